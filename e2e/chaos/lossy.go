//go:build linux

package chaos

import (
	"log/slog"
	"time"

	"github.com/mlog/mlog/internal/lossyfs"
)

// LossyDisk is an Options.Disk: a lossyfs mount of backing at mountpoint,
// served by this process, whose PowerLoss drops every write not fsynced.
func LossyDisk(backing, mountpoint string) (Disk, error) {
	return lossyfs.Mount(backing, mountpoint, lossyfs.WithLogger(slog.New(slog.DiscardHandler)))
}

var _ Disk = (*lossyfs.FS)(nil)

// powerLoss is every broker losing power at once, twice, under load:
// fsynced acknowledgements must survive (DESIGN.md, promise 2).
func powerLoss() Schedule {
	return Schedule{Name: "power-loss", Disk: LossyDisk, Budget: 50 * time.Second, Faults: func(f *Faulter) error {
		for round := 0; round < 2; round++ {
			if round > 0 {
				if err := f.Settle(); err != nil {
					return err
				}
				f.Hold()
			}
			if err := f.C.PowerLossAll(); err != nil {
				return err
			}
		}
		return nil
	}}
}
