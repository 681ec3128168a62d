module github.com/nexus-broker/nexus/deploy

go 1.26.0

replace github.com/nexus-broker/nexus/messages => ../messages

replace github.com/nexus-broker/nexus/shared => ../shared

replace github.com/nexus-broker/nexus/services/vault => ../services/vault

replace github.com/nexus-broker/nexus/services/handshake => ../services/handshake

replace github.com/nexus-broker/nexus/services/admin => ../services/admin

replace github.com/nexus-broker/nexus/services/refresher => ../services/refresher

require (
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	k8s.io/api v0.37.2 // indirect
	k8s.io/apimachinery v0.37.2 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)
