# Static release builds: `make dist` writes CGO-free binaries for linux/amd64
# and linux/arm64 to dist/, with the version stamped in (git describe, or
# VERSION=v1.2.3 make dist).
# `make packages` turns them into .deb and .rpm packages in dist/packages/
# (deploy/packaging/: nfpm, pinned, from the Go module proxy).
# `make packages PLATFORMS=linux/amd64 DIST=/tmp/x` builds fewer, elsewhere.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PLATFORMS := linux/amd64 linux/arm64
DIST := dist

.PHONY: dist packages test clean
dist:
	@mkdir -p $(DIST)
	@for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "building $(DIST)/pmta-agent-$$os-$$arch ($(VERSION))"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' \
			-o $(DIST)/pmta-agent-$$os-$$arch ./cmd/pmta-agent || exit 1; \
	done

packages: dist
	deploy/packaging/build.sh '$(DIST)' '$(VERSION)' $(patsubst linux/%,%,$(PLATFORMS))

test:
	go test -race -count=1 ./...

clean:
	rm -rf $(DIST)
