// Command consumer is `mlog consumer` under the seed's name.
package main

import "github.com/mlog/mlog/cmd/internal/cli"

func main() { cli.Execute(cli.ConsumerCmd()) }
