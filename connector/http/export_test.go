package http

import "github.com/nhisync/nhisync/connector/apiclient"

// Client returns the connector's API client (tests replace its Sleep).
func Client(c *Connector) *apiclient.Client { return c.api }
