package main

import (
	"github.com/spf13/pflag"

	"github.com/fathom-scheduler/fathom/models"
)

// bindViolationBudget adds --violation-budget to f, into b: the one flag
// `fathom server`, `fathom dev`, `fathom sim` and `fathom model eval` share,
// with one default (models.DefaultViolationBudget) and one parser
// (models.ParseViolationBudget), so the server's recommenders, the
// simulator's and the evaluation's steer to the same budget.
func bindViolationBudget(f *pflag.FlagSet, b *models.ViolationBudget) {
	*b = models.DefaultViolationBudget()
	f.Var(b, "violation-budget", "share of task-windows whose usage may exceed the limit, per resource: cpu=F,memory=F (fractions, or percentages like 0.5%; a resource left out keeps its default); fathom's recommenders steer the fleet to it")
}
