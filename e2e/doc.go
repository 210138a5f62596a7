// Package e2e runs mlog's real binaries as separate processes and drives
// them with real clients (kcat from Debian's package, franz-go), as a new
// user would. The tests build the binaries themselves.
package e2e
