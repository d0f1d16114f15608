package ranktrain

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
)

// Sources of the propensity power a run weighted its rows with.
const (
	PropensityEstimated  = "estimated"
	PropensityConfigured = "configured"
)

// Propensity is the position-bias correction a run used and the evidence
// for it, for the run record.
type Propensity struct {
	// Power is what rows were weighted with: (position+1)^Power.
	Power float64 `json:"power"`
	// Source is PropensityEstimated when Power was fitted to the explore
	// impressions, PropensityConfigured when it is Config.PropensityPower.
	Source string `json:"source"`
	// Note says why the configured power was used, or that the fit was
	// clamped.
	Note           string `json:"note,omitempty"`
	ExploreQueries int    `json:"explore_queries"`
	ExploreClicks  int    `json:"explore_clicks"`
	// Positions are the click rates by shown position on explore
	// impressions, top first.
	Positions []PositionCTR `json:"positions,omitempty"`
}

// PositionCTR is the click rate at one shown position of the explore
// impressions.
type PositionCTR struct {
	Position    int     `json:"position"`
	Impressions int     `json:"impressions"`
	Clicks      int     `json:"clicks"`
	CTR         float64 `json:"ctr"`
	// Theta is the examination probability relative to the top position,
	// CTR / CTR at position 0; absent when the top was never clicked.
	Theta float64 `json:"theta,omitempty"`
}

// maxPropensityPower is the top of Config.PropensityPower's range; a fit
// beyond it is clamped, as the configured power would be refused.
const maxPropensityPower = 3

// EstimatePropensity measures examination by position on the explore
// queries (result randomization) and fits the power of the 1/(p+1)^power
// examination curve. Only explore queries count: on them the item shown at
// a position does not depend on the item, so a position's click rate is its
// examination probability times the slate's mean attractiveness, and click
// rates divided by the top's are examination divided by the top's. On
// ranked pages the better items sit at the top, which would add their
// attractiveness to the apparent position effect. A positive label is a
// click.
//
// The fit is a least-squares line through log CTR against log(p+1),
// weighted by clicks (the inverse of log CTR's sampling variance); the
// slope is -power and the intercept absorbs the mean attractiveness.
// Positions without clicks have no log CTR and are left out. The power is
// clamped to [0, 3]. It is an error when fewer than two positions have
// clicks; the counts are returned anyway.
func EstimatePropensity(qs []*Query) (Propensity, error) {
	est := Propensity{Source: PropensityEstimated}
	// A map, not a slice by position: positions come from clients and
	// need not be dense or small.
	type tally struct{ imps, clicks int }
	byPos := make(map[int]*tally)
	for _, q := range qs {
		if !q.Explore {
			continue
		}
		est.ExploreQueries++
		for i, p := range q.Positions {
			if p < 0 { // refused at ingestion; log(p+1) is undefined
				continue
			}
			t := byPos[p]
			if t == nil {
				t = &tally{}
				byPos[p] = t
			}
			t.imps++
			if q.Labels[i] > 0 {
				t.clicks++
				est.ExploreClicks++
			}
		}
	}
	ctr0 := 0.0
	if t := byPos[0]; t != nil {
		ctr0 = float64(t.clicks) / float64(t.imps)
	}
	var x, y, w []float64
	for _, p := range slices.Sorted(maps.Keys(byPos)) {
		t := byPos[p]
		pc := PositionCTR{Position: p, Impressions: t.imps, Clicks: t.clicks, CTR: float64(t.clicks) / float64(t.imps)}
		if ctr0 > 0 {
			pc.Theta = pc.CTR / ctr0
		}
		est.Positions = append(est.Positions, pc)
		if pc.Clicks > 0 {
			x = append(x, math.Log(float64(p+1)))
			y = append(y, math.Log(pc.CTR))
			w = append(w, float64(pc.Clicks))
		}
	}
	if len(x) < 2 {
		return est, fmt.Errorf("explore clicks at %d positions, need 2 to fit a curve", len(x))
	}
	slope, err := weightedSlope(x, y, w)
	if err != nil {
		return est, err
	}
	fitted := -slope
	est.Power = min(max(fitted, 0), maxPropensityPower)
	if est.Power != fitted {
		est.Note = fmt.Sprintf("fitted power %.3f clamped to %g", fitted, est.Power)
	}
	return est, nil
}

// weightedSlope is the slope of the weighted least-squares line of y on x.
func weightedSlope(x, y, w []float64) (float64, error) {
	var sw, sx, sy float64
	for i := range x {
		sw += w[i]
		sx += w[i] * x[i]
		sy += w[i] * y[i]
	}
	mx, my := sx/sw, sy/sw
	var sxy, sxx float64
	for i := range x {
		sxy += w[i] * (x[i] - mx) * (y[i] - my)
		sxx += w[i] * (x[i] - mx) * (x[i] - mx)
	}
	if !(sxx > 0) {
		return 0, errors.New("explore clicks do not vary in position")
	}
	return sxy / sxx, nil
}

// propensity decides the power a run weights with: the estimate when c asks
// for it and the explore queries hold enough clicks to trust it, else the
// configured power, with a note saying why.
func propensity(c Config, qs []*Query) Propensity {
	est, err := EstimatePropensity(qs)
	configured := func(why string) Propensity {
		est.Power, est.Source = c.PropensityPower, PropensityConfigured
		est.Note = fmt.Sprintf("%s; using configured power %g", why, c.PropensityPower)
		return est
	}
	switch {
	case !c.PropensityEstimate:
		return configured("estimation off")
	case est.ExploreClicks < c.MinExploreClicks:
		return configured(fmt.Sprintf("only %s explore clicks, need %s", thousands(est.ExploreClicks), thousands(c.MinExploreClicks)))
	case err != nil:
		return configured(err.Error())
	}
	return est
}

// summary is the progress line for p.
func (p Propensity) summary() string {
	if p.Source != PropensityEstimated {
		return "position bias: " + p.Note
	}
	s := fmt.Sprintf("position bias: power %.2f estimated from %s clicks on %s randomized impressions",
		p.Power, thousands(p.ExploreClicks), thousands(p.ExploreQueries))
	if p.Note != "" {
		s += " (" + p.Note + ")"
	}
	return s
}

// thousands formats n with comma separators: 1234567 is "1,234,567".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}
