// Command producer is `mlog producer` as a binary of its own (the name the tutorial uses).
package main

import "github.com/mlog/mlog/cmd/internal/cli"

func main() { cli.Execute(cli.ProducerCmd()) }
