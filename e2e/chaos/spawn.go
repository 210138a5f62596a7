package chaos

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// The kernel sends a child its parent-death signal (Pdeathsig) when the
// thread that forked it exits, not when the process does. inNS ends every
// thread it moves into a namespace, and the Go scheduler may hand inNS the
// very thread that forked a server a moment earlier: that server was then
// SIGKILLed with nothing in its log (seen: TestFaultMechanics found node 3's
// listeners gone right after a few dials from the namespaces). So every
// child is forked from one locked thread that never exits.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

// startChild starts cmd from the spawner thread, with SIGKILL as its
// parent-death signal so no server outlives a test process killed
// without its cleanup.
func startChild(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawner.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	spawner.reqs <- spawnReq{cmd, errc}
	return <-errc
}
