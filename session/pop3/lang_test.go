package pop3

import (
	"os"
	"regexp"
	"testing"
)

// Every -ERR text the service has is in every catalog: LANG covers every
// human-readable reply, not some.
func TestCatalogsCoverEveryError(t *testing.T) {
	src, err := os.ReadFile("errors.go")
	if err != nil {
		t.Fatal(err)
	}
	texts := regexp.MustCompile(`&Error\{[^}]*Text: "([^"]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(texts) < 20 {
		t.Fatalf("found only %d error texts in errors.go", len(texts))
	}
	for lang, cat := range catalogs {
		for _, m := range texts {
			if _, ok := translate(cat, m[1]); !ok {
				t.Errorf("%s: no translation of %q", lang, m[1])
			}
		}
	}
}
