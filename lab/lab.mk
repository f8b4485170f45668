# Lab targets, included by the top-level Makefile.
LAB := lab/scripts/lab.sh

.PHONY: docker lab-images lab-up lab-down lab-wipe lab-status

docker: ## Install/start the Docker engine and the Compose v2 plugin if missing
	@lab/scripts/ensure-docker.sh

lab-images: ## Build the lab's images (skipped when their inputs are unchanged)
	@$(LAB) images

lab-up: ## Build what is missing, start the lab, wait until every service is healthy, print the URLs
	@$(LAB) up

lab-down: ## Stop the lab, keeping its data
	@$(LAB) down

lab-wipe: ## Stop the lab and delete its volumes (all data)
	@$(LAB) wipe

lab-status: ## Show the state and health of every lab service
	@$(LAB) status
