# kubeface: `make demo` trains on the bundled photos, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME ?= $(CURDIR)/.kubeface
DEMO_MODEL_NAME ?= demo-classifier

.PHONY: venv demo test compile images push-images clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Train on the bundled photos, publish to $(DEMO_HOME)/store, then name every test photo.
demo: $(STAMP)
	mkdir -p $(DEMO_HOME)
	KUBEFACE_HOME=$(DEMO_HOME) KUBEFACE_STORE=$(DEMO_HOME)/store $(BIN)/kubeface run \
		--model-name $(DEMO_MODEL_NAME) --json > $(DEMO_HOME)/summary.json
	KUBEFACE_HOME=$(DEMO_HOME) $(BIN)/kubeface recognize \
		--model "$$($(BIN)/python -c "import json; print(json.load(open('$(DEMO_HOME)/summary.json'))['model_uri'])")" \
		src/kubeface/data/demo_lfw/test

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

compile: $(STAMP)
	$(BIN)/kubeface compile

# Image names and tags come from kubeface.imagerefs, the names the pipeline and deploy step use.
# Set KUBEFACE_REGISTRY to build for another registry; compile or submit with the same value.
DOCKER ?= docker
export KUBEFACE_REGISTRY
COMPONENT_IMAGE = $(shell $(BIN)/python -m kubeface.imagerefs component)
PREDICTOR_IMAGE = $(shell $(BIN)/python -m kubeface.imagerefs predictor)
KUBEFACE_VERSION = $(shell $(BIN)/python -c "import kubeface; print(kubeface.__version__)")

images: $(STAMP)
	$(DOCKER) build --file images/component.Dockerfile --build-arg KUBEFACE_VERSION=$(KUBEFACE_VERSION) \
		--tag $(COMPONENT_IMAGE) .
	$(DOCKER) build --file images/predictor.Dockerfile --build-arg KUBEFACE_VERSION=$(KUBEFACE_VERSION) \
		--tag $(PREDICTOR_IMAGE) .

push-images: images
	$(DOCKER) push $(COMPONENT_IMAGE)
	$(DOCKER) push $(PREDICTOR_IMAGE)

clean:
	rm -rf $(VENV) $(DEMO_HOME)
