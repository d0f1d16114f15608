package catalog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// JSONLWriter streams items as JSON Lines, one object per line, in the
// format the JSONL reader accepts. It buffers: call Flush when done.
type JSONLWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
	n   int
}

// NewJSONLWriter returns a writer that writes to w.
func NewJSONLWriter(w io.Writer) *JSONLWriter {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	// Catalog text is not embedded in HTML; escaping <, > and & would only
	// make the file harder to read and diff.
	enc.SetEscapeHTML(false)
	return &JSONLWriter{bw: bw, enc: enc}
}

// Write appends one item.
func (w *JSONLWriter) Write(it Item) error {
	w.n++
	if err := w.enc.Encode(&it); err != nil {
		return fmt.Errorf("write item %d (id %q): %w", w.n, truncate(it.ID, 40), err)
	}
	return nil
}

// Flush writes any buffered data to the underlying writer.
func (w *JSONLWriter) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("flush catalog: %w", err)
	}
	return nil
}

// WriteJSONL writes items as JSON Lines.
func WriteJSONL(w io.Writer, items []Item) error {
	jw := NewJSONLWriter(w)
	for i := range items {
		if err := jw.Write(items[i]); err != nil {
			return err
		}
	}
	return jw.Flush()
}
