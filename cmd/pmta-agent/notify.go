package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotifier tells systemd how the service is doing (Type=notify): READY=1
// once sources and sinks run, WATCHDOG=1 while it runs, STOPPING=1 when it
// begins to stop. It writes datagrams to the socket $NOTIFY_SOCKET names;
// without one (not started by systemd, or another Type) it does nothing.
// The protocol is a few lines of the standard library, so no library.
type sdNotifier struct {
	addr string
	// watchdog is how often to send WATCHDOG=1: half of $WATCHDOG_USEC,
	// when it is meant for this process ($WATCHDOG_PID); 0 for none.
	watchdog time.Duration
}

func newSDNotifier() sdNotifier {
	n := sdNotifier{addr: os.Getenv("NOTIFY_SOCKET")}
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	pid := os.Getenv("WATCHDOG_PID")
	if err == nil && usec > 0 && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n.watchdog = time.Duration(usec) * time.Microsecond / 2
	}
	return n
}

// notify sends one state; errors are the caller's to log.
func (n sdNotifier) notify(state string) error {
	if n.addr == "" {
		return nil
	}
	name := n.addr
	if name[0] == '@' {
		name = "\x00" + name[1:] // an abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// keepAlive sends WATCHDOG=1 every n.watchdog until ctx ends.
func (n sdNotifier) keepAlive(ctx context.Context, report func(error)) {
	if n.addr == "" || n.watchdog <= 0 {
		return
	}
	t := time.NewTicker(n.watchdog)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.notify("WATCHDOG=1"); err != nil {
				report(err)
			}
		}
	}
}
