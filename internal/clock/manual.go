package clock

import (
	"sort"
	"sync"
	"time"
)

// Manual is a clock for tests: time stands still until Advance moves it, and
// waiters whose deadline has passed are woken in deadline order.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewManual returns a manual clock set to start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *Manual) After(d time.Duration) <-chan time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := m.now.Add(d)
	if d <= 0 {
		ch <- m.now
		return ch
	}
	m.waiters = append(m.waiters, waiter{at: at, ch: ch})
	return ch
}

// Waiters reports how many After channels have not fired yet, so a test can
// wait until the code under test is blocked on the clock before advancing it.
func (m *Manual) Waiters() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.waiters)
}

// Advance moves the clock forward by d and fires every waiter that is due.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	m.now = m.now.Add(d)
	now := m.now
	sort.Slice(m.waiters, func(i, j int) bool { return m.waiters[i].at.Before(m.waiters[j].at) })
	var keep []waiter
	for _, w := range m.waiters {
		if !w.at.After(now) {
			w.ch <- w.at
			continue
		}
		keep = append(keep, w)
	}
	m.waiters = keep
	m.mu.Unlock()
}
