package secret

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := FromString("12345678")
	outs := []string{
		s.String(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %X %d", s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ PIN Secret }{s}), fmt.Sprintf("%+v", &struct{ PIN Secret }{s}),
	}
	j, err := json.Marshal(struct{ PIN Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	for _, o := range outs {
		if strings.Contains(o, "1234") || strings.Contains(o, "3132333435") {
			t.Errorf("secret leaked in %q", o)
		}
		if !strings.Contains(o, redacted) {
			t.Errorf("no redaction marker in %q", o)
		}
	}
}

func TestSecretWipeEqualClone(t *testing.T) {
	a := New([]byte("abcd"))
	b := a.Clone()
	if !a.Equal(b) {
		t.Fatal("clone differs")
	}
	if a.Equal(FromString("abce")) || a.Equal(FromString("abc")) {
		t.Fatal("different secrets compare equal")
	}
	a.Wipe()
	for _, c := range a {
		if c != 0 {
			t.Fatal("wipe left bytes")
		}
	}
	if string(b) != "abcd" {
		t.Fatal("wiping the original changed the clone")
	}
}
