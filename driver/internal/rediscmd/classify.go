package rediscmd

import (
	"errors"

	"github.com/tendril-db/tendril/driver"
)

// Classify says what err, returned by one attempt of a statement on a
// Redis-speaking node, means for another attempt (driver.Classifier).
//
// The server errors retried are all refusals: Redis answers them from
// processCommand or from the cluster's key routing, before the command is
// called, so the command did not run and retrying it is safe whatever the
// command. In detail (Redis 7.0, server.c processCommand and cluster.c
// getNodeByQuery):
//
//	TRYAGAIN     RetryLater    a multi-key command met a slot being migrated
//	                           with only some of its keys here; refused
//	                           until the migration moves on
//	LOADING      RetryLater    the node is loading its dataset; commands not
//	                           flagged "loading" are refused until it is done
//	BUSY         RetryLater    a script or function runs past its time limit;
//	                           every command but SCRIPT/FUNCTION KILL and
//	                           SHUTDOWN NOSAVE is refused until it ends
//	CLUSTERDOWN  RetryRefresh  the cluster is down or the slot is not served:
//	                           refused until the topology changes
//	READONLY     RetryDemoted  a write reached a replica (the client's map is
//	                           stale: the node was demoted)
//	MASTERDOWN   RetryRefresh  a replica lost its primary and is configured
//	                           not to serve stale data; a failover is due
//	NOREPLICAS   RetryRefresh  the primary has fewer good replicas than
//	                           min-replicas-to-write: a guard against
//	                           accepting writes on the minority side of a
//	                           partition, whose likely end is a failover
//	                           that only a refresh will see
//
// Inside a script (EVAL, FCALL) READONLY, MASTERDOWN and NOREPLICAS are
// raised before the script runs, or at its first write (script.c
// scriptVerifyWriteCommandAllow gives up the check once the script has
// written): a script failing with them has written nothing either.
//
// Other server errors (*driver.ServerError) are the statement's own outcome
// (ERR, WRONGTYPE, NOSCRIPT, BUSYKEY, OOM, NOAUTH...): RetryNever. A MOVED
// redirect is RetryRefresh (the partition map is stale); ASK is
// RetryDefault: the user API follows redirects from the
// *driver.RedirectError, which says more than a Retry can. Anything else
// (network errors, driver.ErrBadConn, context errors) is RetryDefault: the
// user API's generic rules decide, knowing whether the statement may have
// been sent and whether it is idempotent.
func Classify(err error) driver.Retry {
	if err == nil {
		return driver.RetryDefault
	}
	var re *driver.RedirectError
	if errors.As(err, &re) {
		if re.Ask {
			return driver.RetryDefault
		}
		return driver.RetryRefresh
	}
	var se *driver.ServerError
	if !errors.As(err, &se) {
		return driver.RetryDefault
	}
	switch se.Code {
	case "TRYAGAIN", "LOADING", "BUSY":
		return driver.RetryLater
	case "READONLY":
		return driver.RetryDemoted
	case "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS":
		return driver.RetryRefresh
	}
	return driver.RetryNever
}
