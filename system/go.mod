module github.com/nexus-broker/nexus/system

go 1.26.0

replace github.com/nexus-broker/nexus/messages => ../messages
replace github.com/nexus-broker/nexus/shared => ../shared
replace github.com/nexus-broker/nexus/services/vault => ../services/vault
replace github.com/nexus-broker/nexus/services/handshake => ../services/handshake
replace github.com/nexus-broker/nexus/services/admin => ../services/admin
replace github.com/nexus-broker/nexus/testing/oidcprovider => ../testing/oidcprovider
