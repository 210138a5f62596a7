// Command mlog is every mlog command under one root: mlog server, mlog perf.
package main

import "github.com/mlog/mlog/cmd/internal/cli"

func main() { cli.Execute(cli.Root()) }
