package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recsys-dev/recsys/offline/ranktrain"
)

const runsSynopsis = "runs [--config FILE] [--runs DIR] [--json]"

// runRuns is `recsys runs`: the training run history, oldest first.
func runRuns(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("runs", runsSynopsis, stdout)
	path := configFlag(fs)
	dir := fs.String("runs", "", "run history directory (default <var>/runs, next to bundles.dir)")
	asJSON := fs.Bool("json", false, "print every record in full, one JSON object per line")
	cfg, err := parseWithConfig(fs, path, args)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = filepath.Join(filepath.Dir(cfg.Bundles.Dir), "runs")
	}
	recs, err := ranktrain.ReadRecords(*dir)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	if len(recs) == 0 {
		fmt.Fprintf(stdout, "no runs recorded in %s\n", *dir)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tDATA (impressions)\tTRAIN q/rows\tTEST q/rows\tTREES\tPOSITION BIAS\tTEST NDCG@10 new/current\tDECISION\tREASON")
	for _, r := range recs {
		if r.Kind == KindNightly {
			var steps []string
			for _, s := range r.Steps {
				steps = append(steps, s.Name+":"+s.Status)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t%s\t%s\n", r.ID, r.Kind, strings.Join(steps, " "), r.Decision, r.Reason)
			continue
		}
		span := "-"
		if !r.Data.Oldest.IsZero() {
			span = fmt.Sprintf("%s..%s", r.Data.Oldest.Format(time.DateTime), r.Data.Newest.Format(time.DateTime))
		}
		bias := "-"
		if p := r.Propensity; p != nil {
			bias = fmt.Sprintf("%.2f %s", p.Power, p.Source)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (%d)\t%d/%d\t%d/%d\t%d\t%s\t%.4f/%.4f\t%s\t%s\n", r.ID, r.Kind, span, r.Join.Impressions,
			r.Rows.TrainQueries, r.Rows.TrainRows, r.Rows.TestQueries, r.Rows.TestRows, r.Metrics.Trees, bias,
			r.Metrics.TestNDCG, r.Metrics.CurrentTestNDCG, r.Decision, r.Reason)
	}
	return tw.Flush()
}
