package store

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"tlsready.db", "tlsready.db"},
		{"/var/lib/tlsready/tlsready.db", "/var/lib/tlsready/tlsready.db"},
		{"postgres://tlsready@db.example/tlsready", "postgres://tlsready@db.example/tlsready"},
		{"postgres://tlsready:s3cretPW@db.example:5432/tlsready?sslmode=require", "postgres://tlsready:xxxxx@db.example:5432/tlsready?sslmode=require"},
		{"postgresql://tlsready:s3cretPW@db.example/tlsready", "postgresql://tlsready:xxxxx@db.example/tlsready"},
		{"postgres://tlsready@db.example/tlsready?password=s3cretPW&sslmode=disable", "postgres://tlsready@db.example/tlsready?password=xxxxx&sslmode=disable"},
		{"postgres://tlsready@db.example/tlsready?sslpassword=s3cretPW", "postgres://tlsready@db.example/tlsready?sslpassword=xxxxx"},
		{"postgres://tlsready:s3cretPW@db.example/tlsready?password=s3cretPW", "postgres://tlsready:xxxxx@db.example/tlsready?password=xxxxx"},
		{"postgres://tlsready:s3cretPW@db.example:port/tlsready", "postgres://(unparsable URL)"},
		{"postgres://tlsready@db.example/tlsready?password=s3cretPW%zz", "postgres://(unparsable URL)"},
	} {
		got := RedactURL(tc.in)
		if got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "s3cretPW") {
			t.Errorf("RedactURL(%q) shows the password", tc.in)
		}
	}
}
