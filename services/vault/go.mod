module github.com/nexus-broker/nexus/services/vault

go 1.26.0

replace github.com/nexus-broker/nexus/messages => ../../messages
replace github.com/nexus-broker/nexus/shared => ../../shared
replace github.com/nexus-broker/nexus/testing/oidcprovider => ../../testing/oidcprovider
