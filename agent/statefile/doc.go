// Package statefile writes the agent's state safely: a file replaced
// atomically (temporary file, fsync, rename, fsync of the directory), and
// an exclusive lock on a state directory so that two agents never share one.
// State is private to the agent's user: files 0600, directories 0700.
package statefile
