package api

import (
	"embed"

	"github.com/gofiber/fiber/v2"
)

// The playground is plain HTML, CSS and JavaScript embedded in the binary:
// a search box, recommend by user or seed item, result cards, the
// explanation panel and a rule editor wired to POST /v1/rules/dry-run.
//
//go:embed playground/index.html playground/playground.js playground/playground.css
var playground embed.FS

const routePlayground = "/"

// playgroundFiles maps each route to its embedded file and content type.
var playgroundFiles = map[string][2]string{
	"/":               {"playground/index.html", "text/html; charset=utf-8"},
	"/playground.js":  {"playground/playground.js", "text/javascript; charset=utf-8"},
	"/playground.css": {"playground/playground.css", "text/css; charset=utf-8"},
}

func (s *Server) servePlayground() {
	for route, f := range playgroundFiles {
		body, err := playground.ReadFile(f[0])
		if err != nil {
			panic(err) // embedded at build time: cannot happen
		}
		ctype := f[1]
		s.app.Get(route, named(routePlayground), func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, ctype)
			c.Set(fiber.HeaderCacheControl, "no-cache")
			// The page loads only itself; nothing else may run in it.
			c.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
			return c.Send(body)
		})
	}
}
