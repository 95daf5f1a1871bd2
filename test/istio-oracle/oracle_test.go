package oracle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	istiolog "istio.io/istio/pkg/log"
)

// IstioVersion is the proxy version the oracle's proxies announce: the release line of the pinned
// istio.io/istio module (see go.mod and the README).
const IstioVersion = "1.31.0"

// TestServe is the oracle's loop. It runs only when ORACLE_SERVE=1 (the TypeScript client sets it):
// one JSON Request per stdin line, one JSON Answer per line on fd 3, each request in its own
// subtest so a failure inside Istio's harness fails that request only.
func TestServe(t *testing.T) {
	if os.Getenv("ORACLE_SERVE") != "1" {
		t.Skip("ORACLE_SERVE=1 runs the oracle loop")
	}
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
	answers := os.NewFile(3, "answers")
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	enc := json.NewEncoder(answers)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 1 {
			var req Request
			var ans Answer
			if jerr := json.Unmarshal(line, &req); jerr != nil {
				ans = Answer{ID: req.ID, Error: "request: " + jerr.Error()}
			} else {
				ok := t.Run(fmt.Sprint(req.ID), func(t *testing.T) {
					// Istio's fakes panic on some inputs (duplicate objects): that request fails, not the oracle.
					defer func() {
						if r := recover(); r != nil {
							ans = Answer{ID: req.ID, Error: fmt.Sprintf("Istio's harness panicked: %v", r)}
						}
					}()
					ans = Serve(t, &req)
				})
				if !ok && ans.Error == "" {
					ans = Answer{ID: req.ID, Error: "Istio's harness failed this scenario (its message is on the oracle's stdout)"}
				}
			}
			if werr := enc.Encode(ans); werr != nil {
				t.Fatalf("answer: %v", werr)
			}
		}
		if err != nil {
			return
		}
	}
}
