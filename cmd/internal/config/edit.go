package config

import (
	"bytes"
	"errors"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// setText returns data with the key at path set to the TOML value text
// lit. An existing "key = value" is rewritten in place (its comment kept);
// a missing key is added at the end of its table, or in a new table at the
// end of the file. Everything else is left byte for byte.
func setText(data []byte, path []string, lit string) ([]byte, error) {
	table := path[:len(path)-1]
	name := path[len(path)-1]

	var p unstable.Parser
	p.Reset(data)
	var cur []string // the current [table]
	inArray := false // inside an [[array table]]
	tableEnd := -1   // offset after the last line of the target table seen so far
	replStart, replEnd := -1, -1
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			cur = cur[:0]
			it := e.Key()
			last := 0
			for it.Next() {
				k := it.Node()
				cur = append(cur, string(k.Data))
				last = int(k.Raw.Offset + k.Raw.Length)
			}
			inArray = e.Kind == unstable.ArrayTable
			if !inArray && equal(cur, table) && tableEnd < 0 {
				tableEnd = lineEnd(data, last)
			}
		case unstable.KeyValue:
			if inArray {
				continue
			}
			full := append([]string(nil), cur...)
			keyEnd := 0
			it := e.Key()
			for it.Next() {
				k := it.Node()
				full = append(full, string(k.Data))
				keyEnd = int(k.Raw.Offset + k.Raw.Length)
			}
			kvEnd := int(e.Raw.Offset + e.Raw.Length)
			switch {
			case equal(full, path):
				replStart, replEnd = keyEnd, kvEnd
			case len(full) < len(path) && equal(full, path[:len(full)]):
				return nil, errors.New("the file sets this key inside an inline table; edit the file by hand")
			}
			if equal(cur, table) {
				tableEnd = lineEnd(data, kvEnd)
			}
		}
	}
	if err := p.Error(); err != nil {
		return nil, errors.New("the file is not valid TOML; fix it by hand first: " + err.Error())
	}
	var out bytes.Buffer
	switch {
	case replStart >= 0:
		out.Write(data[:replStart])
		out.WriteString(" = ")
		out.WriteString(lit)
		out.Write(data[replEnd:])
	case tableEnd >= 0 || len(table) == 0:
		at := max(tableEnd, 0)
		out.Write(data[:at])
		if at > 0 && data[at-1] != '\n' {
			out.WriteByte('\n')
		}
		out.WriteString(name + " = " + lit + "\n")
		out.Write(data[at:])
	default:
		out.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			out.WriteByte('\n')
		}
		if len(data) > 0 {
			out.WriteByte('\n')
		}
		out.WriteString("[" + strings.Join(table, ".") + "]\n")
		out.WriteString(name + " = " + lit + "\n")
	}
	return out.Bytes(), nil
}

// lineEnd returns the offset just after the newline that ends the line
// holding offset i, or len(data).
func lineEnd(data []byte, i int) int {
	if j := bytes.IndexByte(data[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(data)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
