# Every target installs what it needs: a fresh clone needs only Python 3.11+, Go and make.
PYTHON ?= python3
VENV := .venv
WAC := $(VENV)/bin/wacluster
PYTEST := $(VENV)/bin/pytest
# Where `wacluster testenv build` caches the control plane (the same rule as testenv/build.py).
CACHE := $(or $(WACLUSTER_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/wacluster)

.PHONY: venv build-notice demo test e2e unit integration testenv-build testenv-up testenv-down crds clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tests/harness/pyproject.toml
	@echo "installing the Python dependencies into $(VENV) (a minute or two the first time)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]' -e tests/harness
	touch $@

testenv-build: venv
	$(WAC) testenv build

testenv-up: testenv-build
	$(WAC) testenv up

testenv-down: venv
	$(WAC) testenv down

demo: build-notice testenv-build
	$(VENV)/bin/python hack/demo.py

# The first line a newcomer sees: what a cold first run costs and where it puts things.
build-notice:
	@if ls $(CACHE)/k8s-*/bin/promtool >/dev/null 2>&1; then \
	    echo "test environment cached in $(CACHE): no build needed"; \
	else \
	    echo "first run: building the test environment (Kubernetes, etcd, kwok, helm, promtool from the Go module proxy) into $(CACHE) and Go's caches; about 16 minutes on a fresh 2-core machine (15 min 18 s measured), a progress line at least every 20 s; later runs take about 35 s"; \
	fi

# The product's tests (unit + integration), then the test environment's own (harness), each
# reported on its own; the control plane and PostgreSQL start once per session, inside pytest.
test: testenv-build
	$(PYTEST) -m "unit or integration"
	$(PYTEST) -m harness

# Real pods: one real node (containerd, kubelet, kube-proxy, CoreDNS), images built with Docker
# from Debian packages, the tests/e2e suite through WACLUSTER_KUBECONFIG. Root and Debian only.
e2e: testenv-build
	hack/e2e.sh

# The CRD is generated from the pydantic models; tests fail when the committed file drifts.
crds: venv
	$(WAC) crd -o crds/whatsappcluster.yaml
	$(WAC) crd -o charts/wacluster/crds/whatsappcluster.yaml
	$(WAC) openapi -o docs/openapi.json

unit: venv
	$(PYTEST) -m unit

clean:
	rm -rf $(VENV) .pytest_cache
