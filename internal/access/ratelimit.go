package access

import (
	"sync"
	"time"
)

// failureLimiter counts recent login failures per key (user name, source
// address) and refuses further attempts once a key has too many in the
// window. It is per node: an attacker spreading attempts over nodes gets
// at most nodes × limit tries per window, still far from brute force.
type failureLimiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	fails  map[string][]time.Time
	now    func() time.Time
}

func newFailureLimiter(limit int, window time.Duration) *failureLimiter {
	return &failureLimiter{limit: limit, window: window, fails: map[string][]time.Time{}, now: time.Now}
}

func (l *failureLimiter) prune(key string, now time.Time) []time.Time {
	ts := l.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = ts
	}
	return ts
}

// Blocked reports whether any key is over its limit.
func (l *failureLimiter) Blocked(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		if len(l.prune(k, now)) >= l.limit {
			return true
		}
	}
	return false
}

// Fail records a failure for every key.
func (l *failureLimiter) Fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		l.fails[k] = append(l.prune(k, now), now)
	}
	if len(l.fails) > 100000 { // bound memory under a spray of names
		for k := range l.fails {
			l.prune(k, now)
		}
	}
}

// Reset forgets a key's failures after a successful login.
func (l *failureLimiter) Reset(key string) {
	l.mu.Lock()
	delete(l.fails, key)
	l.mu.Unlock()
}
