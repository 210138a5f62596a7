// Command producer is `mlog producer` under the seed's name.
package main

import "github.com/mlog/mlog/cmd/internal/cli"

func main() { cli.Execute(cli.ProducerCmd()) }
