// Package deploy holds no code: its tests check the deployment files beside
// it (deploy/k8s) against the Kubernetes API types and the services'
// configuration.
package deploy
