// promqlcheck parses PromQL expressions and Prometheus rule files with Prometheus's own code
// (promql/parser and model/rulefmt, as `promtool check rules` does), for the tests of the
// Grafana dashboard and the alert rules in deploy/ (tests/deploy/test_promql.py).
//
// Input on stdin, JSON: {"exprs": ["..."], "rule_files": ["path"]}.
// Output on stdout, JSON: {"exprs": ["" or the parse error, one per expression],
// "rule_files": {"path": ["error", ...]}}. Exit 2 on unreadable input.
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type request struct {
	Exprs     []string `json:"exprs"`
	RuleFiles []string `json:"rule_files"`
}

type answer struct {
	Exprs     []string            `json:"exprs"`
	RuleFiles map[string][]string `json:"rule_files"`
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "promqlcheck: bad input:", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	out := answer{Exprs: make([]string, len(req.Exprs)), RuleFiles: map[string][]string{}}
	for i, e := range req.Exprs {
		if _, err := p.ParseExpr(e); err != nil {
			out.Exprs[i] = err.Error()
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	for _, f := range req.RuleFiles {
		msgs := []string{}
		// unknown fields refused, UTF-8 metric and label names allowed (Prometheus 3's default)
		_, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, logger)
		for _, err := range errs {
			msgs = append(msgs, err.Error())
		}
		out.RuleFiles[f] = msgs
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(2)
	}
}
