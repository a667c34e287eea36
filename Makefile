# Every target installs what it needs: a fresh clone needs only Python 3.11+, Go and make.
PYTHON ?= python3
VENV := .venv
WAC := $(VENV)/bin/wacluster
PYTEST := $(VENV)/bin/pytest

.PHONY: venv demo test e2e unit integration testenv-build testenv-up testenv-down crds clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tests/harness/pyproject.toml
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

demo: testenv-build
	$(VENV)/bin/python hack/demo.py

# unit + integration: the control plane and PostgreSQL start once per session, inside pytest.
test: testenv-build
	$(PYTEST) -m "unit or integration"

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
