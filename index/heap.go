package index

import "slices"

// The graph walks spend a fifth of a build in these heaps, so they are
// hand-written (container/heap would box every element) and sift with a
// hole: the moving element is written once, where it stops, rather than
// swapped at every level.

// minDist is a binary min-heap on distance.
type minDist []distID

func (h *minDist) push(x distID) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].d <= x.d {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = x
}

// heapify orders h as a heap in O(len), whatever its order.
func (h minDist) heapify() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// down sifts h[i] down to its place.
func (h minDist) down(i int) {
	n := len(h)
	x := h[i]
	for {
		m := 2*i + 1
		if m >= n {
			break
		}
		if r := m + 1; r < n && h[r].d < h[m].d {
			m = r
		}
		if !(h[m].d < x.d) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = x
}

func (h *minDist) pop() distID {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	if last > 0 {
		s.down(0)
	}
	*h = s
	return top
}

// maxDist is a binary max-heap on distance: the worst result at the root.
type maxDist []distID

func (h *maxDist) push(x distID) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].d >= x.d {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = x
}

// down sifts h[i] down to its place.
func (h maxDist) down(i int) {
	n := len(h)
	x := h[i]
	for {
		m := 2*i + 1
		if m >= n {
			break
		}
		if r := m + 1; r < n && h[r].d > h[m].d {
			m = r
		}
		if !(h[m].d > x.d) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = x
}

func (h *maxDist) pop() distID {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	if last > 0 {
		s.down(0)
	}
	*h = s
	return top
}

// replaceTop replaces the root (the farthest) with x and restores the
// heap: a push and a pop in one sift, for a full result list taking a
// nearer item.
func (h maxDist) replaceTop(x distID) {
	h[0] = x
	h.down(0)
}

// sortedInto appends the heap's elements to dst nearest first, leaving the
// heap itself as it was.
func (h maxDist) sortedInto(dst []distID) []distID {
	dst = append(dst, h...)
	slices.SortFunc(dst, cmpDistID)
	return dst
}
