// Package cluster holds what makes nodes a cluster: the cluster CA and node
// certificates, node records and their liveness.
package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
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

// EnsureCA loads the cluster CA, creating it on a new cluster. Creation is
// a CAS on both keys, so two nodes racing at first start agree on one CA.
func EnsureCA(ctx context.Context, st *store.Store, clusterName string) (*CA, error) {
	pub := store.NewCollection[pemDoc](st, "cluster/ca")
	sec := store.NewCollection[pemDoc](st, "secret/ca")
	if _, err := pub.Get("cert"); errors.Is(err, store.ErrNotFound) {
		certPEM, keyPEM, err := newCA(clusterName)
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
	cert, err := parseCert([]byte(c.Value.PEM))
	if err != nil {
		return nil, err
	}
	kb, _ := pem.Decode([]byte(k.Value.PEM))
	if kb == nil {
		return nil, errors.New("cluster CA key: no PEM block")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("cluster CA key: %w", err)
	}
	return &CA{Cert: cert, Key: key, PEM: []byte(c.Value.PEM)}, nil
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue node certificate: %w", err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.PEM...)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.PEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
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
