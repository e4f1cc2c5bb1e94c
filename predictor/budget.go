package predictor

import "github.com/fathom-scheduler/fathom/models"

// ViolationBudget is the share of task-windows whose usage may exceed the
// limit, per resource (models.ViolationBudget; see there).
type ViolationBudget = models.ViolationBudget

// DefaultViolationBudget is the budget when none is given: cpu=0.005,
// memory=0.0005.
func DefaultViolationBudget() ViolationBudget { return models.DefaultViolationBudget() }

// ParseViolationBudget reads "cpu=0.005,memory=0.0005" (fractions, or
// percentages such as "0.5%"); a resource not named keeps the default.
// Errors wrap models.ErrBadBudget and say what to give.
func ParseViolationBudget(s string) (ViolationBudget, error) { return models.ParseViolationBudget(s) }

// BudgetPool returns the pool through which the predictor's fathom
// recommenders steer the violation budget (nil when Config.New was given):
// persist its State with the tasks' Snapshot and Restore it on start.
func (p *Predictor) BudgetPool() *models.BudgetPool {
	if p.factory == nil {
		return nil
	}
	return p.factory.Pool
}
