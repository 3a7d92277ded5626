# A decision that reads the data nhisync keeps in step: a service account
# may use an entitlement when the synced document grants it.
package nhi.authz

default allow := false

allow if {
	some e in data.nhi.accounts[input.account].entitlements
	e == input.entitlement
}
