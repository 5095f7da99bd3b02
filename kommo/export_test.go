package kommo

import (
	"context"
	"time"
)

// SetLimiterClock replaces the rate limiter's clock and sleep, so tests can prove the
// throttling without wall-clock sleeps.
func SetLimiterClock(c *Client, now func() time.Time, sleep func(context.Context, time.Duration) error) {
	c.lim.now = now
	c.lim.sleep = sleep
}

// ParseItemErrors exposes the 400 body parser.
var ParseItemErrors = parseItemErrors
