package register

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

// Open opens the register at path for reading; "-" is standard input (which
// Close leaves open). Input that starts with the gzip magic bytes (RFC 1952
// §2.3.1) is decompressed transparently, whatever the file is called.
func Open(path string) (io.ReadCloser, error) {
	var (
		src    io.Reader
		closer io.Closer
	)
	if path == "-" {
		src = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err // *fs.PathError: names the file, never its content
		}
		src, closer = f, f
	}
	br := bufio.NewReaderSize(src, readBufferSize)
	magic, _ := br.Peek(2) // a short or failing read shows up again on Read
	if len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return &readCloser{Reader: br, closers: []io.Closer{closer}}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return nil, fmt.Errorf("register: gzip input: %w", err)
	}
	return &readCloser{Reader: zr, closers: []io.Closer{zr, closer}}, nil
}

type readCloser struct {
	io.Reader
	closers []io.Closer // nil entries are skipped
}

// Close closes the gzip reader, if any, then the file; it returns the first error.
func (rc *readCloser) Close() error {
	var first error
	for _, c := range rc.closers {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
