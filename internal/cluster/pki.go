// Package cluster holds what makes nodes a cluster: the cluster CA and node
// certificates, node records and their liveness.
package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/corral-project/corral/internal/store"
)

type pemDoc struct {
	PEM string `json:"pem"`
}

// CA is the cluster certificate authority. Its certificate is public
// (cluster/ca); its key lives only in the secret keyspace (secret/ca).
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

// NewCA makes a cluster CA in memory. A founding node makes it before its
// store starts, so that the store's peer endpoint has a node certificate
// from its first start on.
func NewCA(clusterName string) (*CA, error) {
	certPEM, keyPEM, err := newCA(clusterName)
	if err != nil {
		return nil, err
	}
	return parseCA(certPEM, keyPEM)
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("cluster CA key: no PEM block")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("cluster CA key: %w", err)
	}
	return &CA{Cert: cert, Key: key, PEM: certPEM}, nil
}

func (ca *CA) keyPEM() ([]byte, error) {
	kd, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
}

// Fingerprint is the SHA-256 of the CA certificate, hex: what a join token
// carries so the joining node trusts nothing on first use.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint is the hex SHA-256 of a certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return hex.EncodeToString(h[:])
}

// ClusterName is the name the CA was made for.
func (ca *CA) ClusterName() string {
	return strings.TrimPrefix(ca.Cert.Subject.CommonName, "corral cluster CA ")
}

// EnsureCA loads the cluster CA, creating it on a new cluster (from pre
// when the caller made one before the store started). Creation is a CAS
// on both keys, so two nodes racing at first start agree on one CA.
func EnsureCA(ctx context.Context, st *store.Store, clusterName string, pre *CA) (*CA, error) {
	pub := store.NewCollection[pemDoc](st, "cluster/ca")
	sec := store.NewCollection[pemDoc](st, "secret/ca")
	if _, err := pub.Get("cert"); errors.Is(err, store.ErrNotFound) {
		if pre == nil {
			var err error
			if pre, err = NewCA(clusterName); err != nil {
				return nil, err
			}
		}
		certPEM := pre.PEM
		keyPEM, err := pre.keyPEM()
		if err != nil {
			return nil, err
		}
		op1, _ := pub.PutOp("cert", pemDoc{PEM: string(certPEM)}, 0)
		op2, _ := sec.PutOp("key", pemDoc{PEM: string(keyPEM)}, 0)
		if _, err := st.Apply(ctx, op1, op2); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("store cluster CA: %w", err)
		}
	}
	c, err1 := pub.Get("cert")
	k, err2 := sec.Get("key")
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	return parseCA([]byte(c.Value.PEM), []byte(k.Value.PEM))
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("certificate: no PEM block")
	}
	return x509.ParseCertificate(b.Bytes)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func newCA(name string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "corral cluster CA " + name, Organization: []string{"corral"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
}

// NodeCert returns the node's TLS certificate from dir, issuing a new one
// from the CA when it is missing, expiring within 30 days, or lacks one of
// the wanted names. The node key never leaves the node.
func (ca *CA) NodeCert(dir, node string, hosts []string) (tls.Certificate, error) {
	certFile, keyFile := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && c.Leaf != nil && ca.fits(c.Leaf, hosts) {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM, err := ca.Issue(node, hosts, &key.PublicKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := WritePKI(dir, certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), ca.PEM); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
}

// Issue signs a node certificate (server and client use) for pub with the
// node name as common name and hosts as names; the CA certificate follows
// the leaf in the PEM, so a peer can check the chain against a fingerprint.
func (ca *CA) Issue(node string, hosts []string, pub any) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: node, Organization: []string{"corral"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue node certificate: %w", err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.PEM...), nil
}

// PKIFiles are the node's certificate, key and the cluster CA in dir.
func PKIFiles(dir string) store.TLSFiles {
	return store.TLSFiles{CertFile: filepath.Join(dir, "node.crt"), KeyFile: filepath.Join(dir, "node.key"), CAFile: filepath.Join(dir, "ca.crt")}
}

// HasPKI reports whether dir holds a node certificate, key and CA.
func HasPKI(dir string) bool {
	f := PKIFiles(dir)
	for _, p := range []string{f.CertFile, f.KeyFile, f.CAFile} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// WritePKI stores a node certificate, its key (0600) and the CA in dir
// (0700), each by a rename so a crash never leaves half a file.
func WritePKI(dir string, certPEM, keyPEM, caPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f := PKIFiles(dir)
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{f.KeyFile, keyPEM, 0o600}, {f.CertFile, certPEM, 0o644}, {f.CAFile, caPEM, 0o644}} {
		tmp := w.path + ".tmp"
		if err := os.WriteFile(tmp, w.data, w.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, w.path); err != nil {
			return err
		}
	}
	return nil
}

func (ca *CA) fits(leaf *x509.Certificate, hosts []string) bool {
	if time.Until(leaf.NotAfter) < 30*24*time.Hour || leaf.CheckSignatureFrom(ca.Cert) != nil {
		return false
	}
	for _, h := range hosts {
		if h != "" && leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}
