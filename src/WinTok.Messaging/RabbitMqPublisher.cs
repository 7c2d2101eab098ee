using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using RabbitMQ.Client;
using WinTok.Contracts;
using WinTok.ServiceDefaults;

namespace WinTok.Messaging;

/// <summary>
/// Publishes persistent messages to the type's quorum queue on a channel with publisher confirms: a publish completes
/// when the broker has the message on a quorum of nodes, and throws when it nacks. Broker outages are retried by the
/// broker pipeline while the connection recovers (so a message may be published twice: the handler is idempotent).
/// </summary>
internal sealed class RabbitMqPublisher<TMessage>(
    RabbitMqConnection connection,
    IOptions<JobQueueOptions> options,
    [FromKeyedServices(RabbitMqConnection.PipelineKey)] ResiliencePipeline pipeline,
    ILogger<RabbitMqPublisher<TMessage>> logger) : IMessagePublisher<TMessage>, IAsyncDisposable
    where TMessage : class, IJobMessage
{
    private readonly QueueNames names = QueueNames.For<TMessage>(options.Value.QueuePrefix);
    private readonly JsonTypeInfo<TMessage> typeInfo = MessageJson.TypeInfo<TMessage>();
    private readonly SemaphoreSlim gate = new(1, 1);
    private IChannel? channel;

    public async Task PublishAsync(TMessage message, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(message, typeInfo);
        var properties = new BasicProperties
        {
            Persistent = true,
            ContentType = "application/json",
            MessageId = $"{message.JobId:N}-{message.Partition}-{message.Attempt}",
            Type = typeof(TMessage).Name,
            // Read back by consumers as MessageContext.PublishedAt (queue lag); AMQP timestamps are whole seconds.
            Timestamp = new AmqpTimestamp(DateTimeOffset.UtcNow.ToUnixTimeSeconds()),
        };
        await pipeline.ExecuteAsync(async token =>
        {
            await gate.WaitAsync(token);
            try
            {
                var open = await GetChannelAsync(token);
                await open.BasicPublishAsync(exchange: "", routingKey: names.Queue, mandatory: true, properties, body, token);
            }
            finally
            {
                gate.Release();
            }
        }, cancellationToken);
        Log.PublishedMessage(logger, names.Queue, message.JobId, message.Partition, message.Attempt);
    }

    public async Task PublishManyAsync(IReadOnlyCollection<TMessage> messages, CancellationToken cancellationToken)
    {
        foreach (var message in messages)
        {
            await PublishAsync(message, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (channel is { } open)
        {
            await RabbitMqShutdown.CloseAsync(open);
        }
        gate.Dispose();
    }

    private async Task<IChannel> GetChannelAsync(CancellationToken cancellationToken)
    {
        // A channel closed by the broker (not by a connection loss, which recovery handles) is replaced.
        if (channel is { IsClosed: true } closed && closed.CloseReason?.Initiator == ShutdownInitiator.Peer && (await connection.GetAsync(cancellationToken)).IsOpen)
        {
            await closed.DisposeAsync();
            channel = null;
        }
        if (channel is null)
        {
            var open = await connection.GetAsync(cancellationToken);
            var created = await open.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
            await RabbitMqTopology.DeclareAsync(created, names, options.Value, cancellationToken);
            channel = created;
        }
        return channel;
    }
}
