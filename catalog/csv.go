package catalog

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// csvColumns lists every column the CSV reader knows, in the order the
// writer of a template would use. Columns are matched by name, so a file
// may order them freely and leave optional ones out.
var csvColumns = []string{
	"id", "title", "description", "brand", "category", "tags",
	"price", "age_rating", "available", "created_at", "popularity",
}

// csvRequired are the columns without which no row could pass validation.
var csvRequired = []string{"id", "title", "created_at"}

// TagSeparator separates tags inside the CSV tags cell.
const TagSeparator = "|"

func readCSV(r io.Reader) ([]Item, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // checked per row below, so a bad row is reported, not fatal
	cr.ReuseRecord = true

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &ValidationError{Problems: []Problem{{Line: 1, Reason: "missing header row"}}}
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, &ValidationError{Problems: []Problem{{Line: pe.StartLine, Reason: "header: " + pe.Err.Error()}}}
		}
		return nil, fmt.Errorf("read header: %w", err)
	}
	cols, problem := csvHeader(header)
	if problem != "" {
		return nil, &ValidationError{Problems: []Problem{{Line: 1, Reason: problem}}}
	}

	c := newChecker()
	var items []Item
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("read csv: %w", err)
			}
			// encoding/csv resumes at the next line after a syntax error,
			// so keep going and report every bad line.
			c.add(pe.StartLine, "", "", "undecodable: "+pe.Err.Error())
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(cols) {
			if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
				continue // a blank line inside quotes-free data; nothing to import
			}
			id := ""
			if i := cols["id"]; i < len(rec) && idProblem(rec[i]) == "" {
				id = rec[i]
			}
			c.add(line, id, "", fmt.Sprintf("has %d fields, header has %d", len(rec), len(cols)))
			continue
		}
		items = append(items, csvItem(c, line, rec, cols))
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, ErrEmpty
	}
	return items, nil
}

// csvHeader maps column names to positions, or explains what is wrong with
// the header: unknown or repeated columns, or missing required ones.
func csvHeader(header []string) (map[string]int, string) {
	known := make(map[string]bool, len(csvColumns))
	for _, c := range csvColumns {
		known[c] = true
	}
	cols := make(map[string]int, len(header))
	var unknown, repeated []string
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case !known[h]:
			unknown = append(unknown, strconv.Quote(h))
		case hasKey(cols, h):
			repeated = append(repeated, h)
		default:
			cols[h] = i
		}
	}
	var missing []string
	for _, r := range csvRequired {
		if !hasKey(cols, r) {
			missing = append(missing, r)
		}
	}
	var msgs []string
	if len(missing) > 0 {
		msgs = append(msgs, "missing required columns: "+strings.Join(missing, ", "))
	}
	if len(unknown) > 0 {
		msgs = append(msgs, "unknown columns: "+strings.Join(unknown, ", "))
	}
	if len(repeated) > 0 {
		msgs = append(msgs, "repeated columns: "+strings.Join(repeated, ", "))
	}
	return cols, strings.Join(msgs, "; ")
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

// csvItem converts one record. Empty optional cells take the JSONL
// defaults: 0 for numbers, available = true.
func csvItem(c *checker, line int, rec []string, cols map[string]int) Item {
	cell := func(name string) string {
		if i, ok := cols[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	it := Item{
		ID:          cell("id"),
		Title:       cell("title"),
		Description: cell("description"),
		Brand:       cell("brand"),
		Category:    cell("category"),
		Available:   true,
	}
	// Cells, the id included, are trimmed: spreadsheet exports pad cells,
	// and an id with edge spaces is never intended.
	pid := safeID(it.ID)
	if tags := cell("tags"); tags != "" {
		for _, t := range strings.Split(tags, TagSeparator) {
			if t = strings.TrimSpace(t); t != "" {
				it.Tags = append(it.Tags, t)
			}
		}
	}
	var bad fieldSet
	float := func(name string, dst *float64, flag fieldSet) {
		s := cell(name)
		if s == "" {
			return
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			c.add(line, pid, name, fmt.Sprintf("not a number: %q", truncate(s, 40)))
			bad |= flag
			return
		}
		*dst = v
	}
	float("price", &it.Price, fPrice)
	float("popularity", &it.Popularity, fPopularity)
	if s := cell("age_rating"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			c.add(line, pid, "age_rating", fmt.Sprintf("not an integer: %q", truncate(s, 40)))
			bad |= fAgeRating
		}
		it.AgeRating = v
	}
	if s := cell("available"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			c.add(line, pid, "available", fmt.Sprintf("not a boolean: %q", truncate(s, 40)))
		} else {
			it.Available = v
		}
	}
	t, err := parseTime(cell("created_at"))
	if err != nil {
		c.add(line, pid, "created_at", err.Error())
		bad |= fCreatedAt
	}
	it.CreatedAt = t
	c.check(line, &it, bad)
	return it
}
