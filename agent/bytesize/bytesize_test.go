package bytesize

import "testing"

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{"1GiB": 1 << 30, "512MiB": 512 << 20, "500MB": 500e6, "64k": 64 << 10, "1073741824": 1 << 30, " 2 gib ": 2 << 30} {
		var b Size
		if err := b.UnmarshalText([]byte(in)); err != nil || b != want {
			t.Errorf("%q → %d, %v; want %d", in, b, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1GiB", "1XB"} {
		var b Size
		if err := b.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted as %d", bad, b)
		}
	}
	if s := Size(1 << 30).String(); s != "1GiB" {
		t.Errorf("String() = %s", s)
	}
}
