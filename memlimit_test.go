package main

import "testing"

func TestGoMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    int64
		wantErr bool
	}{
		{name: "nothing set", want: 0},
		{name: "bytes, as a resourceFieldRef gives them", env: map[string]string{memoryLimitEnv: "268435456"}, want: 241591910},
		{name: "a quantity set by hand", env: map[string]string{memoryLimitEnv: "150Mi"}, want: 141557760},
		{name: "GOMEMLIMIT wins", env: map[string]string{memoryLimitEnv: "150Mi", "GOMEMLIMIT": "100MiB"}, want: 0},
		{name: "not a quantity", env: map[string]string{memoryLimitEnv: "lots"}, wantErr: true},
		{name: "zero", env: map[string]string{memoryLimitEnv: "0"}, wantErr: true},
		{name: "negative", env: map[string]string{memoryLimitEnv: "-1Gi"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := goMemoryLimit(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("goMemoryLimit = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
