using Microsoft.Extensions.Logging;

namespace WinTok.Messaging;

/// <summary>Log lines of the job queue: 1000s (docs/architecture.md lists every project's range).</summary>
internal static partial class Log
{
    [LoggerMessage(1001, LogLevel.Information, "Connecting to RabbitMQ at {Host}:{Port}...")]
    public static partial void ConnectingToBroker(ILogger logger, string host, int port);

    [LoggerMessage(1002, LogLevel.Information, "Connected to RabbitMQ at {Host}:{Port}")]
    public static partial void ConnectedToBroker(ILogger logger, string host, int port);

    [LoggerMessage(1003, LogLevel.Warning, "Lost the RabbitMQ connection ({ReplyCode} {ReplyText}); recovering")]
    public static partial void BrokerConnectionLost(ILogger logger, ushort replyCode, string replyText);

    [LoggerMessage(1004, LogLevel.Information, "Recovered the RabbitMQ connection")]
    public static partial void BrokerConnectionRecovered(ILogger logger);

    [LoggerMessage(1010, LogLevel.Information, "Consuming {Queue} with prefetch {PrefetchCount} and delivery limit {DeliveryLimit}")]
    public static partial void ConsumerStarted(ILogger logger, string queue, int prefetchCount, int deliveryLimit);

    [LoggerMessage(1011, LogLevel.Information, "Stopping consumer of {Queue}: draining {InFlight} in-flight messages for up to {DrainTimeoutMs}ms...")]
    public static partial void ConsumerDraining(ILogger logger, string queue, int inFlight, long drainTimeoutMs);

    [LoggerMessage(1012, LogLevel.Information, "Stopped consumer of {Queue}")]
    public static partial void ConsumerStopped(ILogger logger, string queue);

    [LoggerMessage(1013, LogLevel.Critical, "The broker closed the consumer channel of {Queue} ({ReplyCode} {ReplyText}); stopping the host")]
    public static partial void ConsumerChannelClosed(ILogger logger, string queue, ushort replyCode, string replyText);

    [LoggerMessage(1020, LogLevel.Information, "Handling {Queue} message for job {JobId} partition {Partition} attempt {Attempt} (earlier deliveries: {DeliveryCount})...")]
    public static partial void HandlingMessage(ILogger logger, string queue, Guid jobId, int partition, int attempt, int deliveryCount);

    [LoggerMessage(1021, LogLevel.Information, "Handled {Queue} message for job {JobId} partition {Partition} in {DurationMs}ms")]
    public static partial void HandledMessage(ILogger logger, string queue, Guid jobId, int partition, long durationMs);

    [LoggerMessage(1022, LogLevel.Information, "Returning {Queue} message for job {JobId} partition {Partition} to retry later: {Reason}")]
    public static partial void MessageRetryLater(ILogger logger, string queue, Guid jobId, int partition, string? reason);

    [LoggerMessage(1023, LogLevel.Error, "Handler failed on {Queue} message for job {JobId} partition {Partition} (earlier deliveries: {DeliveryCount}); requeueing")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string queue, Guid jobId, int partition, int deliveryCount);

    [LoggerMessage(1024, LogLevel.Warning, "Handler cancelled ({Cause}) on {Queue} message for job {JobId} partition {Partition}; requeueing")]
    public static partial void HandlerCancelled(ILogger logger, string queue, Guid jobId, int partition, string cause);

    [LoggerMessage(1025, LogLevel.Warning, "Malformed message {MessageId} on {Queue}")]
    public static partial void MalformedMessage(ILogger logger, Exception exception, string queue, string messageId);

    [LoggerMessage(1026, LogLevel.Warning, "Dead-lettered message {MessageId} from {Queue}: {Reason}")]
    public static partial void DeadLetteredMessage(ILogger logger, string queue, string? messageId, string reason);

    [LoggerMessage(1027, LogLevel.Warning, "Could not dead-letter message {MessageId} from {Queue}; requeueing it")]
    public static partial void DeadLetterPublishFailed(ILogger logger, Exception exception, string queue, string? messageId);

    [LoggerMessage(1028, LogLevel.Warning, "Could not {Settlement} message {MessageId} from {Queue}: its channel closed, so the broker redelivers it")]
    public static partial void SettlementLost(ILogger logger, string queue, string? messageId, string settlement);

    [LoggerMessage(1030, LogLevel.Debug, "Published to {Queue}: job {JobId} partition {Partition} attempt {Attempt}")]
    public static partial void PublishedMessage(ILogger logger, string queue, Guid jobId, int partition, int attempt);
}
