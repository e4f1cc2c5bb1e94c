package predictor

import (
	"container/heap"
	"sync"

	"github.com/fathom-scheduler/fathom/models"
)

// lockstep walks every series in time, one 5-minute slot (unix seconds /
// models.WindowSeconds) at a time: all windows that start in a slot, of
// every task, are stepped before any window of a later slot; within a slot
// tasks run in parallel on up to workers goroutines, each task's windows in
// order. Recommenders that share state across tasks (a models.BudgetPool,
// whose updates take effect at slot boundaries) then see the same values
// however the work is spread, so the results do not depend on workers.
// step(i, j) handles window j of series i.
func lockstep(series []Series, workers int, step func(i, j int)) {
	next := make([]int, len(series))
	slotOf := func(i int) int64 { return series[i].Windows[next[i]].Start.Unix() / models.WindowSeconds }
	h := &slotHeap{}
	for i := range series {
		if len(series[i].Windows) > 0 {
			h.items = append(h.items, slotItem{slot: slotOf(i), task: i})
		}
	}
	heap.Init(h)
	var active []int
	run := func(part []int, cur int64) {
		for _, i := range part {
			for next[i] < len(series[i].Windows) && slotOf(i) == cur {
				step(i, next[i])
				next[i]++
			}
		}
	}
	for h.Len() > 0 {
		cur := h.items[0].slot
		active = active[:0]
		for h.Len() > 0 && h.items[0].slot == cur {
			active = append(active, heap.Pop(h).(slotItem).task)
		}
		if workers <= 1 || len(active) < 2*workers {
			run(active, cur)
		} else {
			var wg sync.WaitGroup
			chunk := (len(active) + workers - 1) / workers
			for k := 0; k < len(active); k += chunk {
				part := active[k:min(k+chunk, len(active))]
				wg.Add(1)
				go func() {
					defer wg.Done()
					run(part, cur)
				}()
			}
			wg.Wait()
		}
		for _, i := range active {
			if next[i] < len(series[i].Windows) {
				heap.Push(h, slotItem{slot: slotOf(i), task: i})
			}
		}
	}
}

type slotItem struct {
	slot int64
	task int
}

// slotHeap orders tasks by the slot of their next window, then by index.
type slotHeap struct{ items []slotItem }

func (h *slotHeap) Len() int { return len(h.items) }
func (h *slotHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	return a.slot < b.slot || a.slot == b.slot && a.task < b.task
}
func (h *slotHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *slotHeap) Push(x any)    { h.items = append(h.items, x.(slotItem)) }
func (h *slotHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
