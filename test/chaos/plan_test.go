package chaos

import (
	"reflect"
	"testing"
	"time"
)

func TestPlanIsReproducible(t *testing.T) {
	c := Config{Seed: 42, Duration: 4 * time.Minute, FaultEvery: 4 * time.Second, InstallEvery: 5 * time.Second,
		Reinstalls: 0.3, Outages: 2, OutageMax: 30 * time.Second, Controllers: 2, Webhooks: 2}
	a, b := Plan(c), Plan(c)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two plans")
	}
	c.Seed = 43
	if reflect.DeepEqual(a, Plan(c)) {
		t.Error("another seed gave the same plan")
	}
	n := Count(a)
	if n[APIOutage] != 2 || n[Install] == 0 || n[Reinstall] == 0 || n[KillController] == 0 || n[KillMidInstall]+n[TermMidInstall] == 0 {
		t.Errorf("counts %v", n)
	}
	var outages []Event
	for i, e := range a {
		if i > 0 && e.At < a[i-1].At {
			t.Fatalf("not in order at %d", i)
		}
		if e.At < 0 || e.At >= c.Duration {
			t.Errorf("%v outside the run", e)
		}
		if e.Kind == Reinstall && e.Target >= n[Install] {
			t.Errorf("%v reinstalls an account never installed", e)
		}
		if e.Kind == APIOutage {
			outages = append(outages, e)
			if e.At+e.Length > c.Duration-10*time.Second {
				t.Errorf("%v ends too late", e)
			}
		}
	}
	if outages[0].Length != 30*time.Second && outages[1].Length != 30*time.Second {
		t.Errorf("no outage of the full length: %v", outages)
	}
	if outages[0].At+outages[0].Length > outages[1].At {
		t.Errorf("outages overlap: %v", outages)
	}
}
