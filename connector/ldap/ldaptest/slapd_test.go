package ldaptest

import "testing"

func TestStartStop(t *testing.T) {
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(s.URL, s.LDAPSURL)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}
