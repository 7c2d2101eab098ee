using System.Net.Http;
using System.Net.Sockets;
using Azure;
using Microsoft.Data.Sqlite;
using Npgsql;
using RabbitMQ.Client.Exceptions;

namespace WinTok.Worker.Resilience;

/// <summary>
/// Which failures are worth retrying, per dependency. Everything else (bad requests, conflicts, constraint violations,
/// cancellation) surfaces at once. <see cref="OperationCanceledException"/> is never transient.
/// </summary>
internal static class TransientFailures
{
    /// <summary>Blob Storage: 408, 429, 5xx, and transport failures (status 0: connection refused or reset).</summary>
    public static bool IsTransientBlob(Exception exception) => exception switch
    {
        OperationCanceledException => false,
        RequestFailedException { Status: 0 or 408 or 429 or >= 500 } => true,
        RequestFailedException => false,
        AggregateException aggregate => aggregate.InnerExceptions.All(IsTransientBlob),
        _ => IsTransientTransport(exception),
    };

    /// <summary>PostgreSQL: what Npgsql calls transient (connection loss, serialization failure, deadlock, shutdown); SQLite: busy or locked.</summary>
    public static bool IsTransientDatabase(Exception exception) => exception switch
    {
        OperationCanceledException => false,
        NpgsqlException npgsql => npgsql.IsTransient,
        SqliteException { SqliteErrorCode: 5 or 6 } => true, // SQLITE_BUSY, SQLITE_LOCKED
        _ => false,
    };

    /// <summary>RabbitMQ: the connection or channel is closed (recovery under way) or the broker is unreachable.</summary>
    public static bool IsTransientBroker(Exception exception) => exception switch
    {
        OperationCanceledException => false,
        AlreadyClosedException or BrokerUnreachableException or OperationInterruptedException => true,
        _ => IsTransientTransport(exception),
    };

    private static bool IsTransientTransport(Exception exception) => exception switch
    {
        HttpRequestException or SocketException or IOException or TimeoutException => true,
        { InnerException: { } inner } => IsTransientTransport(inner),
        _ => false,
    };
}
