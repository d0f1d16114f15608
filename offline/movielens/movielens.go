// Package movielens runs MovieLens ratings (ml-latest-small) through the
// product: the movies become a catalog, the liked ratings (>= 4) click
// events replayed by the nightly build, and the engine serve runs answers
// every test user (EvaluateProduct), under the published per-user split
// (each user's newest 20% held out) and a global time split (one cut-off
// date, nothing after it in any statistic). The ranker learns from the
// same protocol shifted back inside the training ratings, so nothing of
// the held-out slice reaches it.
package movielens

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Rating is one row of ratings.csv.
type Rating struct {
	User, Movie int
	Stars       float32
	Time        int64
}

// Movie is one row of movies.csv.
type Movie struct {
	Title  string
	Year   int
	Genres []string
}

// Data is a loaded MovieLens folder.
type Data struct {
	Ratings []Rating
	Movies  map[int]Movie
}

// Load reads ratings.csv and movies.csv from dir.
func Load(dir string) (*Data, error) {
	d := &Data{Movies: map[int]Movie{}}
	err := readCSV(filepath.Join(dir, "movies.csv"), 3, func(rec []string) error {
		id, err := strconv.Atoi(rec[0])
		if err != nil {
			return fmt.Errorf("movieId %q: %w", rec[0], err)
		}
		m := Movie{Title: rec[1]}
		if i := strings.LastIndex(rec[1], "("); i >= 0 && strings.HasSuffix(strings.TrimSpace(rec[1]), ")") {
			m.Year, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rec[1][i+1:]), ")"))
		}
		if rec[2] != "(no genres listed)" {
			m.Genres = strings.Split(rec[2], "|")
		}
		d.Movies[id] = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readCSV(filepath.Join(dir, "ratings.csv"), 4, func(rec []string) error {
		u, err1 := strconv.Atoi(rec[0])
		m, err2 := strconv.Atoi(rec[1])
		s, err3 := strconv.ParseFloat(rec[2], 32)
		t, err4 := strconv.ParseInt(rec[3], 10, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return err
		}
		d.Ratings = append(d.Ratings, Rating{User: u, Movie: m, Stars: float32(s), Time: t})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func readCSV(path string, fields int, fn func([]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("movielens: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = fields
	if _, err := r.Read(); err != nil { // header
		return fmt.Errorf("movielens %s: header: %w", path, err)
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("movielens %s: %w", path, err)
		}
		if err := fn(rec); err != nil {
			return fmt.Errorf("movielens %s line %d: %w", path, line, err)
		}
	}
}

// splitByTime returns, per user, the ratings before and after the user's
// last frac of them by time (ties by movie id, so the split is stable).
func splitByTime(byUser map[int][]Rating, frac float64) (past, future map[int][]Rating) {
	past, future = map[int][]Rating{}, map[int][]Rating{}
	for u, rs := range byUser {
		rs = slices.Clone(rs)
		slices.SortFunc(rs, func(a, b Rating) int {
			if a.Time != b.Time {
				return int(a.Time - b.Time)
			}
			return a.Movie - b.Movie
		})
		n := int(float64(len(rs))*frac + 0.5)
		past[u], future[u] = rs[:len(rs)-n], rs[len(rs)-n:]
	}
	return past, future
}

func byUser(rs []Rating) map[int][]Rating {
	out := map[int][]Rating{}
	for _, r := range rs {
		out[r.User] = append(out[r.User], r)
	}
	return out
}
