// Package ldaptest runs a throwaway OpenLDAP slapd for tests: a fresh
// directory in a temporary folder, on free loopback ports (ldap:// with
// StartTLS and ldaps://, behind a CA made for the run), with the syncprov
// overlay (RFC 4533) on its main suffix, a second suffix without it, the
// example NHI schema of examples/ldap and the schema the conformance suite's
// records need. Start it once per test binary (TestMain) and Stop it by its
// process id. slapd and ldap-utils come from Debian (scripts/deps installs
// them); a machine without them fails the tests that need it.
package ldaptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Names of the directory a Server holds.
const (
	Suffix        = "dc=nhi,dc=test"
	PlainSuffix   = "dc=plain,dc=test" // no syncprov: changes by modifyTimestamp
	AdminDN       = "cn=admin," + Suffix
	PlainAdminDN  = "cn=admin," + PlainSuffix
	AdminPassword = "nhisync-test-secret"
)

// ConnTestSchema defines the attributes of the conformance suite's
// records (connector/conntest native names) and a structural class
// holding them.
const ConnTestSchema = `
attributetype ( 1.3.6.1.4.1.99999.9.1 NAME 'sysid' EQUALITY caseExactMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.9.2 NAME 'botname' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.9.3 NAME 'platform' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.9.4 NAME 'ownedby' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.9.5 NAME 'tags' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.99999.9.6 NAME 'status' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.9.7 NAME 'rotatedat' EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.9.8 NAME 'notes' EQUALITY caseExactMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.9.9 NAME 'costcenter' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.9.100 NAME 'nhiConnTestRecord' SUP top STRUCTURAL
	MAY ( sysid $ botname $ platform $ ownedby $ tags $ status $ rotatedat $ notes $ costcenter ) )
`

// Server is a running slapd.
type Server struct {
	// URL is ldap://127.0.0.1:PORT (StartTLS offered), LDAPSURL
	// ldaps://localhost:PORT.
	URL, LDAPSURL string
	// CAFile is the PEM file of the CA that signed the server's
	// certificate (for localhost and 127.0.0.1).
	CAFile string
	// Dir holds the configuration, data and log.
	Dir    string
	cmd    *exec.Cmd
	exited chan error
	log    *os.File
}

// binary finds a program of the slapd packages.
func binary(name string) (string, error) {
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/libexec"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed: run scripts/deps (it installs slapd and ldap-utils from Debian)", name)
}

// findFile returns the first of the patterns that matches a file.
func findFile(patterns ...string) string {
	for _, p := range patterns {
		if m, _ := filepath.Glob(p); len(m) > 0 {
			return m[0]
		}
	}
	return ""
}

// ExampleSchema is the path of examples/ldap/nhi.schema in the source tree.
func ExampleSchema() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "examples", "ldap", "nhi.schema")
}

// Start runs a new slapd in a fresh folder under dir and waits until it
// answers. The caller must call Stop.
func Start(dir string) (*Server, error) {
	slapd, err := binary("slapd")
	if err != nil {
		return nil, err
	}
	core := findFile("/etc/ldap/schema/core.schema", "/etc/openldap/schema/core.schema")
	mods := findFile("/usr/lib/ldap/syncprov.so*", "/usr/lib/*/ldap/syncprov.so*", "/usr/lib64/openldap/syncprov.so*")
	if core == "" || mods == "" {
		return nil, errors.New("slapd's schema or modules are missing: run scripts/deps")
	}
	d, err := os.MkdirTemp(dir, "slapd-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: d}
	for _, sub := range []string{"data", "plain"} {
		if err := os.Mkdir(filepath.Join(d, sub), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(d, "conntest.schema"), []byte(ConnTestSchema), 0o644); err != nil {
		return nil, err
	}
	if err := s.makeCerts(); err != nil {
		return nil, err
	}
	schemaDir := filepath.Dir(core)
	conf := fmt.Sprintf(`include %[1]s/core.schema
include %[1]s/cosine.schema
include %[1]s/inetorgperson.schema
include %[1]s/nis.schema
include %[2]s
include %[3]s/conntest.schema
pidfile %[3]s/slapd.pid
modulepath %[4]s
moduleload back_mdb
moduleload syncprov
sizelimit unlimited
TLSCACertificateFile %[3]s/ca.pem
TLSCertificateFile %[3]s/server.pem
TLSCertificateKeyFile %[3]s/server.key

database mdb
suffix "%[5]s"
rootdn "%[6]s"
rootpw %[7]s
directory %[3]s/data
maxsize 1073741824
dbnosync
index objectClass,entryCSN,entryUUID eq
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 10000

database mdb
suffix "%[8]s"
rootdn "%[9]s"
rootpw %[7]s
directory %[3]s/plain
maxsize 104857600
dbnosync
index objectClass,entryUUID eq
`, schemaDir, ExampleSchema(), d, filepath.Dir(mods), Suffix, AdminDN, AdminPassword, PlainSuffix, PlainAdminDN)
	if err := os.WriteFile(filepath.Join(d, "slapd.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", ports[0])
	s.LDAPSURL = fmt.Sprintf("ldaps://localhost:%d", ports[1])
	if s.log, err = os.Create(filepath.Join(d, "slapd.log")); err != nil {
		return nil, err
	}
	// -d 0 keeps slapd in the foreground, so the process is slapd itself.
	s.cmd = exec.Command(slapd, "-d", "0", "-f", filepath.Join(d, "slapd.conf"),
		"-h", fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", ports[0], ports[1]))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start slapd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	for i := 0; ; i++ {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(d, "slapd.log"))
			return nil, fmt.Errorf("slapd exited (%v): %s", err, log)
		default:
		}
		c, err := ldap.DialURL(s.URL)
		if err == nil {
			err = c.Bind(AdminDN, AdminPassword)
			c.Close()
			if err == nil {
				break
			}
		}
		if i > 200 {
			s.cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("slapd did not answer on %s: %v", s.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.exited = exited
	for _, suffix := range []string{Suffix, PlainSuffix} {
		if err := s.addSuffix(suffix); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) addSuffix(suffix string) error {
	c, err := s.Admin(suffix)
	if err != nil {
		return err
	}
	defer c.Close()
	dc := strings.TrimPrefix(strings.Split(suffix, ",")[0], "dc=")
	req := ldap.NewAddRequest(suffix, nil)
	req.Attribute("objectClass", []string{"dcObject", "organization"})
	req.Attribute("dc", []string{dc})
	req.Attribute("o", []string{dc})
	return c.Add(req)
}

// Admin returns a connection bound as the rootdn of suffix.
func (s *Server) Admin(suffix string) (*ldap.Conn, error) {
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		return nil, err
	}
	dn := AdminDN
	if suffix == PlainSuffix {
		dn = PlainAdminDN
	}
	if err := c.Bind(dn, AdminPassword); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Stop stops slapd (SIGINT, then waits for it) and removes its folder.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	s.log.Close()
	return os.RemoveAll(s.Dir)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// makeCerts writes a CA (ca.pem) and a server certificate for localhost
// and 127.0.0.1 signed by it (server.pem, server.key).
func (s *Server) makeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nhisync test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	for name, b := range map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			return err
		}
	}
	return nil
}
