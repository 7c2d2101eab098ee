using System.Text.Json.Serialization.Metadata;
using WinTok.Contracts;

namespace WinTok.Messaging;

public static class MessageJson
{
    /// <summary>The source-generated contract of a message type; every message type must be listed in <see cref="ContractsJsonContext"/>.</summary>
    public static JsonTypeInfo<TMessage> TypeInfo<TMessage>() =>
        ContractsJsonContext.Default.GetTypeInfo(typeof(TMessage)) as JsonTypeInfo<TMessage>
        ?? throw new InvalidOperationException($"{typeof(TMessage).Name} is not registered in {nameof(ContractsJsonContext)}");
}
