"""The fake speaks the wire format the real clients expect (checked with langchain-openai itself)."""

from pydantic import BaseModel

from tests.fakes.openai_server import HTTPError, OpenAIServer


class Company(BaseModel):
    name: str
    industry: str


def test_chat_structured_output_embeddings_and_faults():
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    def chat(request):
        if request.json_schema:
            return {"content": {"name": "Acme", "industry": "Manufacturing"}}
        if request.tools:
            return {"tool_call": {"name": request.tools[0]["function"]["name"],
                                  "arguments": {"name": "Beta", "industry": "Biotech"}}}
        return {"content": "plain answer"}

    with OpenAIServer(chat, dimensions=8, faults=[HTTPError(500)]) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="gpt-4o", max_retries=2)
        assert llm.invoke("hi").content == "plain answer"  # after one 500, retried by the client
        assert llm.with_structured_output(Company).invoke("x") == Company(name="Acme", industry="Manufacturing")
        assert llm.with_structured_output(Company, method="function_calling").invoke("x").name == "Beta"
        embeddings = OpenAIEmbeddings(base_url=server.base_url, api_key="test", check_embedding_ctx_length=False)
        vectors = embeddings.embed_documents(["a b", "a b", "c"])
        assert len(vectors) == 3 and len(vectors[0]) == 8 and vectors[0] == vectors[1] != vectors[2]
        assert server.count("/chat/completions") == 4
