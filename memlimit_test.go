package main

import "testing"

func TestGoMemoryLimit(t *testing.T) {
	const binary = 55 << 20 // about the size of the stripped binary
	for _, tc := range []struct {
		name    string
		env     map[string]string
		binary  int64
		want    int64
		wantErr bool
	}{
		{name: "nothing set", binary: binary, want: 0},
		{name: "bytes, as a resourceFieldRef gives them", env: map[string]string{memoryLimitEnv: "268435456"}, binary: binary,
			want: (256 - 55) << 20 * 9 / 10},
		{name: "a quantity set by hand", env: map[string]string{memoryLimitEnv: "150Mi"}, binary: binary,
			want: (150 - 55) << 20 * 9 / 10},
		{name: "the binary's size unknown: only the margin", env: map[string]string{memoryLimitEnv: "150Mi"},
			want: 150 << 20 * 9 / 10},
		{name: "a limit barely above the binary: a quarter of it", env: map[string]string{memoryLimitEnv: "64Mi"}, binary: binary,
			want: 16 << 20},
		{name: "a limit below the binary: a quarter of it", env: map[string]string{memoryLimitEnv: "32Mi"}, binary: binary,
			want: 8 << 20},
		{name: "GOMEMLIMIT wins", env: map[string]string{memoryLimitEnv: "150Mi", "GOMEMLIMIT": "100MiB"}, binary: binary, want: 0},
		{name: "not a quantity", env: map[string]string{memoryLimitEnv: "lots"}, binary: binary, wantErr: true},
		{name: "zero", env: map[string]string{memoryLimitEnv: "0"}, binary: binary, wantErr: true},
		{name: "negative", env: map[string]string{memoryLimitEnv: "-1Gi"}, binary: binary, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := goMemoryLimit(func(k string) string { return tc.env[k] }, tc.binary)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("goMemoryLimit = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
