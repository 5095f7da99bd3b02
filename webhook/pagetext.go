package webhook

// page is one page a browser can be shown. Its texts are fixed: nothing in a page ever
// comes from the request.
type page int

const (
	pageReceived page = iota // an install accepted: recorded, or being recorded
	pageHandOff              // the same, as the body of the hand-off redirect
	pageCancelled
	pageRevokeReceived
	pageMethod
	pageBody
	pageQueryTooLong
	pageBadQuery
	pageNotFound
	pageUnknownIntegration
	pageBadReferer
	pageBadCode
	pageBadState
	pageBadRevoke
	pageRateLimited
	pagePendingCap
	pageError
	numPages
)

// tone is how a page looks: something accepted, a notice, or a refusal.
type tone string

const (
	toneOK      tone = "ok"
	toneInfo    tone = "info"
	toneRefused tone = "refused"
)

type pageText struct{ title, text string }

type pageDef struct {
	tone  tone
	texts [numLangs]pageText
}

// The wording is truthful: an accepted install is received and being completed (the
// controller has not exchanged the code yet, and may still fail), and a refusal says so
// and that nothing was recorded.
var pages = [numPages]pageDef{
	pageReceived: {toneOK, [numLangs]pageText{
		langEnglish:    {"Installation received", "Kommo has sent us the installation, and it is being completed now. This usually takes a few seconds. You can close this window."},
		langPortuguese: {"Instalação recebida", "O Kommo nos enviou a instalação, que está sendo concluída agora. Isso costuma levar alguns segundos. Você pode fechar esta janela."},
		langSpanish:    {"Instalación recibida", "Kommo nos envió la instalación y se está completando ahora. Suele tardar unos segundos. Puede cerrar esta ventana."},
		langRussian:    {"Установка получена", "Kommo передал нам установку, сейчас она завершается. Обычно это занимает несколько секунд. Это окно можно закрыть."},
	}},
	pageHandOff: {toneOK, [numLangs]pageText{
		langEnglish:    {"Installation received", "Kommo has sent us the installation, and it is being completed now."},
		langPortuguese: {"Instalação recebida", "O Kommo nos enviou a instalação, que está sendo concluída agora."},
		langSpanish:    {"Instalación recibida", "Kommo nos envió la instalación y se está completando ahora."},
		langRussian:    {"Установка получена", "Kommo передал нам установку, сейчас она завершается."},
	}},
	pageCancelled: {toneInfo, [numLangs]pageText{
		langEnglish:    {"Installation cancelled", "Access was not granted in Kommo, so nothing was installed. You can close this window."},
		langPortuguese: {"Instalação cancelada", "O acesso não foi concedido no Kommo, então nada foi instalado. Você pode fechar esta janela."},
		langSpanish:    {"Instalación cancelada", "No se concedió el acceso en Kommo, así que no se instaló nada. Puede cerrar esta ventana."},
		langRussian:    {"Установка отменена", "Доступ в Kommo не был предоставлен, поэтому ничего не установлено. Это окно можно закрыть."},
	}},
	pageRevokeReceived: {toneOK, [numLangs]pageText{
		langEnglish:    {"Notification received", "The notification that access was revoked has been received. You can close this window."},
		langPortuguese: {"Notificação recebida", "A notificação de revogação de acesso foi recebida. Você pode fechar esta janela."},
		langSpanish:    {"Notificación recibida", "Se recibió la notificación de revocación del acceso. Puede cerrar esta ventana."},
		langRussian:    {"Уведомление получено", "Уведомление об отзыве доступа получено. Это окно можно закрыть."},
	}},
	pageMethod: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Request refused", "Only GET requests are accepted at this address. Nothing was recorded."},
		langPortuguese: {"Solicitação recusada", "Este endereço aceita apenas solicitações GET. Nada foi registrado."},
		langSpanish:    {"Solicitud rechazada", "Esta dirección solo acepta solicitudes GET. No se registró nada."},
		langRussian:    {"Запрос отклонён", "По этому адресу принимаются только запросы GET. Ничего не записано."},
	}},
	pageBody: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Request refused", "Requests with a body are not accepted at this address. Nothing was recorded."},
		langPortuguese: {"Solicitação recusada", "Este endereço não aceita solicitações com corpo. Nada foi registrado."},
		langSpanish:    {"Solicitud rechazada", "Esta dirección no acepta solicitudes con cuerpo. No se registró nada."},
		langRussian:    {"Запрос отклонён", "Запросы с телом по этому адресу не принимаются. Ничего не записано."},
	}},
	pageQueryTooLong: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Request refused", "The address is too long. Nothing was recorded."},
		langPortuguese: {"Solicitação recusada", "O endereço é longo demais. Nada foi registrado."},
		langSpanish:    {"Solicitud rechazada", "La dirección es demasiado larga. No se registró nada."},
		langRussian:    {"Запрос отклонён", "Адрес слишком длинный. Ничего не записано."},
	}},
	pageBadQuery: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Request refused", "The address is malformed or repeats a parameter. Nothing was recorded."},
		langPortuguese: {"Solicitação recusada", "O endereço está malformado ou repete um parâmetro. Nada foi registrado."},
		langSpanish:    {"Solicitud rechazada", "La dirección está mal formada o repite un parámetro. No se registró nada."},
		langRussian:    {"Запрос отклонён", "Адрес некорректен или повторяет параметр. Ничего не записано."},
	}},
	pageNotFound: {toneInfo, [numLangs]pageText{
		langEnglish:    {"Not found", "There is nothing at this address."},
		langPortuguese: {"Não encontrado", "Não há nada neste endereço."},
		langSpanish:    {"No encontrado", "No hay nada en esta dirección."},
		langRussian:    {"Не найдено", "По этому адресу ничего нет."},
	}},
	pageUnknownIntegration: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Request refused", "This address does not belong to a Kommo integration configured here. Nothing was recorded."},
		langPortuguese: {"Solicitação recusada", "Este endereço não pertence a uma integração do Kommo configurada aqui. Nada foi registrado."},
		langSpanish:    {"Solicitud rechazada", "Esta dirección no pertenece a ninguna integración de Kommo configurada aquí. No se registró nada."},
		langRussian:    {"Запрос отклонён", "Этот адрес не относится ни к одной настроенной здесь интеграции Kommo. Ничего не записано."},
	}},
	pageBadReferer: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Installation refused", "The request does not come from a Kommo account this integration accepts. Nothing was installed."},
		langPortuguese: {"Instalação recusada", "A solicitação não vem de uma conta do Kommo aceita por esta integração. Nada foi instalado."},
		langSpanish:    {"Instalación rechazada", "La solicitud no proviene de una cuenta de Kommo que esta integración acepte. No se instaló nada."},
		langRussian:    {"Установка отклонена", "Запрос пришёл не из аккаунта Kommo, который принимает эта интеграция. Ничего не установлено."},
	}},
	pageBadCode: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Installation refused", "The authorization code is missing or malformed. Nothing was installed; start the installation again in Kommo."},
		langPortuguese: {"Instalação recusada", "O código de autorização está ausente ou malformado. Nada foi instalado; inicie a instalação novamente no Kommo."},
		langSpanish:    {"Instalación rechazada", "Falta el código de autorización o está mal formado. No se instaló nada; inicie la instalación de nuevo en Kommo."},
		langRussian:    {"Установка отклонена", "Код авторизации отсутствует или некорректен. Ничего не установлено; начните установку в Kommo заново."},
	}},
	pageBadState: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Installation refused", "The state parameter is too long or not printable. Nothing was installed."},
		langPortuguese: {"Instalação recusada", "O parâmetro state é longo demais ou contém caracteres não imprimíveis. Nada foi instalado."},
		langSpanish:    {"Instalación rechazada", "El parámetro state es demasiado largo o contiene caracteres no imprimibles. No se instaló nada."},
		langRussian:    {"Установка отклонена", "Параметр state слишком длинный или содержит непечатаемые символы. Ничего не установлено."},
	}},
	pageBadRevoke: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Request refused", "This is not a valid Kommo notification that access was revoked. Nothing was recorded."},
		langPortuguese: {"Solicitação recusada", "Esta não é uma notificação válida do Kommo de revogação de acesso. Nada foi registrado."},
		langSpanish:    {"Solicitud rechazada", "Esta no es una notificación válida de Kommo de revocación del acceso. No se registró nada."},
		langRussian:    {"Запрос отклонён", "Это не корректное уведомление Kommo об отзыве доступа. Ничего не записано."},
	}},
	pageRateLimited: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Too many requests", "This request was refused because too many came from your network. Nothing was recorded; please try again in a minute."},
		langPortuguese: {"Solicitações demais", "Esta solicitação foi recusada porque vieram solicitações demais da sua rede. Nada foi registrado; tente novamente em um minuto."},
		langSpanish:    {"Demasiadas solicitudes", "Esta solicitud se rechazó porque llegaron demasiadas desde su red. No se registró nada; inténtelo de nuevo en un minuto."},
		langRussian:    {"Слишком много запросов", "Запрос отклонён: из вашей сети пришло слишком много запросов. Ничего не записано; повторите попытку через минуту."},
	}},
	pagePendingCap: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Installation refused for now", "Too many installations are waiting to be completed. Nothing was installed; please try again in a few minutes."},
		langPortuguese: {"Instalação recusada por enquanto", "Há instalações demais aguardando conclusão. Nada foi instalado; tente novamente em alguns minutos."},
		langSpanish:    {"Instalación rechazada por ahora", "Hay demasiadas instalaciones esperando a completarse. No se instaló nada; inténtelo de nuevo en unos minutos."},
		langRussian:    {"Установка пока отклонена", "Слишком много установок ожидают завершения. Ничего не установлено; повторите попытку через несколько минут."},
	}},
	pageError: {toneRefused, [numLangs]pageText{
		langEnglish:    {"Request not recorded", "Something went wrong on our side and the request could not be recorded. Please try again in a moment."},
		langPortuguese: {"Solicitação não registrada", "Algo deu errado do nosso lado e a solicitação não pôde ser registrada. Tente novamente em instantes."},
		langSpanish:    {"Solicitud no registrada", "Algo salió mal de nuestro lado y no se pudo registrar la solicitud. Inténtelo de nuevo en un momento."},
		langRussian:    {"Запрос не записан", "На нашей стороне произошла ошибка, и запрос не удалось записать. Повторите попытку чуть позже."},
	}},
}

// linkText labels the hand-off link, for a browser that does not follow the redirect.
var linkText = [numLangs]string{
	langEnglish:    "Continue",
	langPortuguese: "Continuar",
	langSpanish:    "Continuar",
	langRussian:    "Продолжить",
}
