# Static release builds: `make dist` writes CGO-free binaries for linux/amd64
# and linux/arm64 to dist/, with the version stamped in (git describe, or
# VERSION=v1.2.3 make dist).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PLATFORMS := linux/amd64 linux/arm64

.PHONY: dist test clean
dist:
	@mkdir -p dist
	@for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "building dist/pmta-agent-$$os-$$arch ($(VERSION))"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' \
			-o dist/pmta-agent-$$os-$$arch ./cmd/pmta-agent || exit 1; \
	done

test:
	go test -race -count=1 ./...

clean:
	rm -rf dist
