package controllers

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSingleUseOutlivesCancellationAndDrains(t *testing.T) {
	u := &SingleUse{}
	ctx, cancel := context.WithCancel(context.Background())
	started, release := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- u.Run(ctx, func(ctx context.Context) error {
			close(started)
			<-release
			return ctx.Err() // the detached context is still live
		})
	}()
	<-started
	cancel() // SIGTERM, a lost lease
	if u.Drain(10 * time.Millisecond) {
		t.Fatal("Drain returned while a single-use call was in flight")
	}
	if err := u.Run(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, errShuttingDown) {
		t.Errorf("a new call started while draining: %v", err)
	}
	close(release)
	if err := <-result; err != nil {
		t.Errorf("the call saw its context end: %v", err)
	}
	if !u.Drain(time.Second) {
		t.Error("Drain did not see the call end")
	}
	if err := (&SingleUse{}).Run(ctx, func(context.Context) error { t.Error("started on a canceled context"); return nil }); err == nil {
		t.Error("Run on a canceled context did not refuse")
	}
}
