package main

import (
	"encoding/pem"
	"fmt"
	"io"
	"os"
)

// Limits on what the CLI reads.
const (
	maxInputFile = 1 << 20 // any PEM/DER/JSON input file
	maxChainLen  = 8       // certificates in --chain
	maxChainSize = 64 << 10
)

// writeOut writes b to path ("-" for standard output), PEM-armoured unless
// der.
func writeOut(e *env, path, pemType string, b []byte, der bool) error {
	if !der {
		b = pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: b})
	}
	if path == "-" || path == "" {
		_, err := e.stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, path)
}

// readInput is readFile, with "-" for standard input.
func readInput(e *env, path string) ([]byte, error) {
	if path == "-" {
		return readLimited(e.stdin, "standard input")
	}
	return readFile(path)
}

func readLimited(r io.Reader, path string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxInputFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxInputFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a certificate, request or statement", path, maxInputFile)
	}
	return b, nil
}
