package catalog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// Format names a catalog file format.
type Format string

// The supported formats.
const (
	JSONL Format = "jsonl"
	CSV   Format = "csv"
)

// FormatOf picks the format from a file name's extension.
func FormatOf(path string) (Format, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".jsonl", ".ndjson":
		return JSONL, nil
	case ".csv":
		return CSV, nil
	default:
		return "", fmt.Errorf("catalog format of %q: unknown extension %q (want .jsonl, .ndjson or .csv)", path, ext)
	}
}

// ReadFile reads and validates a catalog, choosing the reader by extension.
// A catalog with any invalid row is refused as a whole with a
// *ValidationError listing every problem.
func ReadFile(path string) ([]Item, error) {
	f, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	defer file.Close()
	items, err := Read(file, f)
	if err != nil {
		return nil, fmt.Errorf("read catalog %s: %w", path, err)
	}
	return items, nil
}

// Read reads and validates a catalog in format f. See ReadFile.
func Read(r io.Reader, f Format) ([]Item, error) {
	switch f {
	case JSONL:
		return readJSONL(r)
	case CSV:
		return readCSV(r)
	default:
		return nil, fmt.Errorf("read catalog: unknown format %q", f)
	}
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// jsonItem mirrors Item with pointers where "absent" must be told apart from
// the zero value, and created_at as a string so a bad timestamp is reported
// as a field problem rather than an undecodable line.
type jsonItem struct {
	ID          *string  `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Brand       string   `json:"brand"`
	Category    string   `json:"category"`
	Tags        []string `json:"tags"`
	Price       float64  `json:"price"`
	AgeRating   int      `json:"age_rating"`
	Available   *bool    `json:"available"`
	CreatedAt   *string  `json:"created_at"`
	Popularity  float64  `json:"popularity"`
}

// MaxLineBytes bounds one JSONL line. Longer lines are reported, not
// buffered, so a binary file passed by mistake cannot exhaust memory.
const MaxLineBytes = 16 << 20

// jsonBatch is how many lines are read before their JSON is decoded in
// parallel; their checks then run in line order.
const jsonBatch = 2048

// jsonLine is one non-blank line of a batch and what decoding it gave.
type jsonLine struct {
	line    int
	raw     []byte
	tooLong bool
	ji      jsonItem
	err     error
}

func readJSONL(r io.Reader) ([]Item, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	c := newChecker()
	// Each batch's items go to a slice of their own, joined once at the
	// end: growing one slice of a million items by appending copied it
	// over and over (a fifth of a 1M-item bundle's load).
	var parts [][]Item
	n := 0
	batch := make([]jsonLine, 0, jsonBatch)
	flush := func() {
		decodeBatch(batch)
		part := make([]Item, 0, len(batch))
		for i := range batch {
			l := &batch[i]
			if l.tooLong {
				c.add(l.line, "", "", fmt.Sprintf("longer than %d bytes", MaxLineBytes))
			} else if it, ok := checkJSONLine(c, l); ok {
				part = append(part, it)
			}
			*l = jsonLine{} // the raw bytes are garbage now
		}
		parts = append(parts, part)
		n += len(part)
		batch = batch[:0]
	}
	for line := 1; ; line++ {
		raw, tooLong, readErr := readLine(br)
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return nil, fmt.Errorf("read line %d: %w", line, readErr)
		}
		if line == 1 {
			raw = bytes.TrimPrefix(raw, utf8BOM)
		}
		if b := bytes.TrimSpace(raw); tooLong || len(b) > 0 {
			batch = append(batch, jsonLine{line: line, raw: b, tooLong: tooLong})
			if len(batch) == jsonBatch {
				flush()
			}
		}
		if readErr != nil {
			break
		}
	}
	flush()
	if err := c.err(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrEmpty
	}
	items := make([]Item, 0, n)
	for i, part := range parts {
		items = append(items, part...)
		parts[i] = nil
	}
	return items, nil
}

// decodeBatch decodes the batch's lines on every core: the strict JSON
// decode is most of a catalog read (15 of 20 s of loading a 1M-item
// bundle before it ran in parallel).
func decodeBatch(batch []jsonLine) {
	workers := min(runtime.GOMAXPROCS(0), (len(batch)+127)/128)
	if workers <= 1 {
		for i := range batch {
			decodeJSON(&batch[i])
		}
		return
	}
	var wg sync.WaitGroup
	per := (len(batch) + workers - 1) / workers
	for lo := 0; lo < len(batch); lo += per {
		part := batch[lo:min(lo+per, len(batch))]
		wg.Go(func() {
			for i := range part {
				decodeJSON(&part[i])
			}
		})
	}
	wg.Wait()
}

// decodeJSON strictly decodes one line into l.ji, or sets l.err. A line
// of valid UTF-8 is decoded by goccy/go-json first (unknown fields refused
// there too), several times faster than encoding/json's strict decoder;
// a line it refuses, or one with invalid UTF-8 (which encoding/json
// replaces by U+FFFD), is decoded by encoding/json, whose error the
// problem reports. TestDecodeJSON_FastMatchesStrict holds the two to the
// same items and the same verdicts.
func decodeJSON(l *jsonLine) {
	if l.tooLong {
		return
	}
	if utf8.Valid(l.raw) && decodeFast(l.raw, &l.ji) {
		return
	}
	l.ji = jsonItem{}
	l.err = decodeStrict(l.raw, &l.ji)
}

// decodeFast reports whether goccy/go-json decoded b into ji as one
// object with known fields only.
func decodeFast(b []byte, ji *jsonItem) bool {
	dec := gojson.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(ji) == nil && !dec.More()
}

// decodeStrict decodes b into ji with encoding/json, refusing unknown
// fields and anything after the object.
func decodeStrict(b []byte, ji *jsonItem) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ji); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the object")
	}
	return nil
}

// readLine returns the next line without its newline. A line longer than
// MaxLineBytes is consumed and discarded with tooLong set. err is io.EOF
// at the end of input (possibly together with a final unterminated line).
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > MaxLineBytes+1 { // +1: the newline itself
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), tooLong, err
	}
}

// checkJSONLine turns one decoded line into an item and checks it, in line
// order. ok is false when the line could not be decoded at all (its
// problem is recorded).
func checkJSONLine(c *checker, l *jsonLine) (Item, bool) {
	line, b, ji, err := l.line, l.raw, &l.ji, l.err
	if err != nil {
		field := ""
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field = te.Field
		} else if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			field, _ = strconv.Unquote(name)
		}
		c.add(line, idOf(b), field, "undecodable: "+err.Error())
		return Item{}, false
	}
	it := Item{
		Title:       ji.Title,
		Description: ji.Description,
		Brand:       ji.Brand,
		Category:    ji.Category,
		Tags:        ji.Tags,
		Price:       ji.Price,
		AgeRating:   ji.AgeRating,
		Available:   ji.Available == nil || *ji.Available,
		Popularity:  ji.Popularity,
	}
	if ji.ID != nil {
		it.ID = *ji.ID
	}
	var bad fieldSet
	if ji.CreatedAt != nil {
		t, err := parseTime(*ji.CreatedAt)
		if err != nil {
			c.add(line, safeID(it.ID), "created_at", err.Error())
			bad |= fCreatedAt
		}
		it.CreatedAt = t
	}
	c.check(line, &it, bad)
	return it, true
}

// idOf recovers the id of a line that failed strict decoding, so the
// problem can name the item; "" when even that fails.
func idOf(b []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	return safeID(v.ID)
}

// parseTime accepts RFC 3339 (with optional fractional seconds). Only the
// string form is accepted: epoch numbers are ambiguous (s, ms or µs).
func parseTime(s string) (time.Time, error) {
	if strings.TrimSpace(s) == "" {
		return time.Time{}, errors.New("missing")
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time: %q", truncate(s, 40))
	}
	if t.IsZero() {
		// The zero instant is how an absent time looks downstream.
		return time.Time{}, errors.New("is the zero time")
	}
	return t, nil
}
